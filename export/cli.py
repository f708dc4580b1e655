"""``zoo export`` and ``zoo quantize``: checkpoint -> verified artifacts and a model card; exit 1 on failure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from export.formats import FORMATS
from zoo.arguments import at_least, split_passed_on

__all__ = ["run_export_command", "run_quantize_command"]


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
    parser.add_argument("--reference_samples", type=at_least(0), default=1024,
                        help="validation inputs recorded as the drift reference of `zoo serve` (0: none)")  # fmt: skip
    parser.add_argument(
        "--quantize", choices=("int8",), default=None,
        help="also write an int8 ONNX artifact, as `zoo quantize` with its defaults would (needs the recipe's data)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]

    from export.api import export_checkpoint
    from zoo.checkpoints import WeightsMismatchError

    try:
        report = export_checkpoint(
            args.ckpt_path, args.out, formats, verify=not args.no_verify, weights=args.weights, task_class=args.task,
            reference_samples=args.reference_samples,
        )  # fmt: skip
        quantized = (
            _quantize(parser, args.ckpt_path, args.out, weights=args.weights, write_card=False)
            if args.quantize
            else None
        )
    except (FileNotFoundError, ValueError, WeightsMismatchError) as err:
        parser.error(str(err))
    if quantized is not None:
        from export.metadata import write_model_card

        report.rows.append(quantized.row)
        report.model_card = write_model_card(Path(args.out), quantized.metadata, report.rows)
    print(report.table())
    print(f"model card: {report.model_card}")
    if not report.ok or (quantized is not None and not quantized.ok):
        sys.exit(1)


def run_quantize_command(argv: list[str]) -> None:
    """``zoo quantize --ckpt_path C --out DIR [--method ...] [--backend ...] [-- data overrides]``; exit 1 on a drop."""
    argv, overrides = split_passed_on(argv)
    parser = argparse.ArgumentParser(
        prog="zoo quantize",
        description=(
            "Quantize a checkpoint's network to int8 (onnxruntime: static QDQ for image classifiers, dynamic for "
            "text classifiers and language models; or torchao) and judge the artifact against fp32 on held-out "
            "data: exit 1, artifact kept but marked failed, when accuracy drops more than --max_drop points. "
            "Arguments after -- change the data (--data.init_args.batch_size 256)."
        ),
    )
    parser.add_argument("--ckpt_path", "--ckpt", required=True, help="checkpoint written by `zoo fit`")
    parser.add_argument("--out", required=True, help="folder for the int8 artifact and model_card.md (created)")
    parser.add_argument("--method", choices=("auto", "static", "dynamic"), default="auto",
                        help="auto: static for image classifiers, dynamic for text models")  # fmt: skip
    parser.add_argument("--backend", choices=("onnxruntime", "torchao"), default="onnxruntime",
                        help="onnxruntime (.onnx) or torchao (an ExportedProgram, .pt2)")  # fmt: skip
    parser.add_argument("--calibration_batches", type=at_least(1), default=8, help="training batches to calibrate on")
    parser.add_argument("--calibrate_method", choices=("minmax", "entropy", "percentile"), default="minmax",
                        help="onnxruntime's calibrator for static quantization")  # fmt: skip
    parser.add_argument("--config", default=None, help="the recipe whose data is used (default: the recorded one)")
    parser.add_argument("--split", choices=("val", "test"), default="val", help="where quality is measured")
    parser.add_argument("--max_drop", type=float, default=1.0, help="accuracy points a classifier may lose")
    parser.add_argument("--max_perplexity_rise", type=float, default=2.0,
                        help="percent a language model's perplexity may rise")  # fmt: skip
    parser.add_argument("--limit_batches", type=int, default=None, help="measure quality on the first N batches")
    parser.add_argument("--weights", choices=("ema", "trained"), default="ema", help="EMA average (default) or not")
    parser.add_argument("--exclude", nargs="+", default=(), help="ONNX node names to keep in float")
    args = parser.parse_args(argv)
    report = _quantize(
        parser, args.ckpt_path, args.out, method=args.method, backend=args.backend,
        calibration_batches=args.calibration_batches, calibrate_method=args.calibrate_method, config=args.config,
        data_overrides=overrides, split=args.split, max_drop=args.max_drop,
        max_perplexity_rise=args.max_perplexity_rise, limit_batches=args.limit_batches, weights=args.weights,
        exclude=args.exclude,
    )  # fmt: skip
    print(f"{report.artifact}: {report.metadata['status']}")
    print(f"model card: {report.model_card}")
    if not report.ok:
        sys.exit(1)


def _quantize(parser: argparse.ArgumentParser, checkpoint: str, out: str, **options: Any) -> Any:
    """``quantize_checkpoint``, with bad input reported by ``parser`` (exit 2) rather than as a traceback."""
    from export.quantize import quantize_checkpoint
    from zoo.checkpoints import WeightsMismatchError
    from zoo.errors import MissingExtraError, UsageError

    try:
        return quantize_checkpoint(checkpoint, out, **options)
    except (FileNotFoundError, ValueError, WeightsMismatchError, UsageError, MissingExtraError) as err:
        parser.error(str(err))
