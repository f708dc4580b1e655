"""``zoo export``: checkpoint -> verified artifacts, a model card and a result table; non-zero exit on failure."""

from __future__ import annotations

import argparse
import sys

from export.formats import FORMATS

__all__ = ["run_export_command"]


def run_export_command(argv: list[str]) -> None:
    """Parse ``argv`` (the arguments after ``export``), export, print the table, exit 1 if anything failed."""
    parser = argparse.ArgumentParser(
        prog="zoo export",
        description=(
            "Export a zoo checkpoint to ONNX, TorchScript and torch.export artifacts that carry their metadata, "
            "and verify each against eager PyTorch on inputs of other shapes."
        ),
    )
    parser.add_argument("--ckpt_path", "--ckpt", required=True, help="checkpoint written by `zoo fit`")
    parser.add_argument("--out", required=True, help="folder for the artifacts and model_card.md (created)")
    parser.add_argument("--format", default=",".join(FORMATS), help=f"comma-separated, from {', '.join(FORMATS)}")
    parser.add_argument("--weights", choices=("ema", "trained"), default="ema", help="EMA average (default) or not")
    parser.add_argument("--task", default=None, help="task class for checkpoints that do not record it")
    parser.add_argument("--no_verify", action="store_true", help="skip the comparison with eager PyTorch")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]

    from export.api import export_checkpoint
    from zoo.checkpoints import WeightsMismatchError

    try:
        report = export_checkpoint(
            args.ckpt_path, args.out, formats, verify=not args.no_verify, weights=args.weights, task_class=args.task
        )
    except (FileNotFoundError, ValueError, WeightsMismatchError) as err:
        parser.error(str(err))
    print(report.table())
    print(f"model card: {report.model_card}")
    if not report.ok:
        sys.exit(1)
