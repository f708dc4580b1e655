"""``zoo prune``: prune a trained checkpoint to a sparsity while fine-tuning it with its own recipe.

The fine-tune is an ordinary ``zoo fit`` of the recipe (the one given, or the one the checkpoint recorded),
starting from the checkpoint's weights (``backbone_kwargs.weights``, EMA weights when the run kept them), for
``--finetune_epochs`` epochs with a :class:`zoo.callbacks.Prune` callback added: the sparsity rises on the
cubic schedule over the first half of the epochs and the second half recovers at the final sparsity. The
result is that run's ``last.ckpt`` (the target sparsity is reached by then; an earlier "best" checkpoint may
be less sparse). For structured pruning the command also reports the parameters and FLOPs of the network
``zoo export`` will write once the pruned channels are cut out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from zoo.arguments import at_least, split_passed_on

__all__ = ["run_prune_command"]


def run_prune_command(argv: list[str]) -> None:
    """``zoo prune --ckpt_path C --sparsity S --finetune_epochs N [--config R] [-- zoo fit overrides]``."""
    argv, overrides = split_passed_on(argv)
    parser = argparse.ArgumentParser(
        prog="zoo prune",
        description="Prune a checkpoint's network (magnitude, unstructured or whole channels) while fine-tuning it "
        "with its recipe; arguments after -- go to zoo fit (--model.init_args.optimizer.init_args.lr 0.02).",
    )
    parser.add_argument("--ckpt_path", "--ckpt", type=Path, required=True, help="checkpoint written by zoo fit")
    parser.add_argument("--sparsity", type=float, required=True, help="final sparsity, in [0, 1)")
    parser.add_argument("--finetune_epochs", type=at_least(1), default=2, help="epochs of fine-tuning (>= 1)")
    parser.add_argument("--method", choices=("unstructured", "structured"), default="structured",
                        help="structured: whole channels (a smaller export); unstructured: single weights")  # fmt: skip
    parser.add_argument("--config", type=Path, default=None, help="the recipe (default: the one it recorded)")
    parser.add_argument("--out", type=Path, default=None, help="run folder root (default: runs/pruned)")
    args = parser.parse_args(argv)
    from zoo.errors import ConfigError
    from zoo.pruning.masks import check_sparsity

    try:
        check_sparsity(args.sparsity)
    except ConfigError as err:
        parser.error(f"--sparsity: {err}")
    if not args.ckpt_path.is_file():
        parser.error(f"--ckpt_path {args.ckpt_path} does not exist")
    checkpoint = prune_checkpoint(
        args.ckpt_path, args.sparsity, args.finetune_epochs, args.method, args.config, args.out, overrides, parser
    )
    print(f"pruned checkpoint: {checkpoint}")
    if args.method == "structured":
        before, after = compare_exported_size(checkpoint)
        print(
            f"exported network: {after['parameters']:,} parameters and {after['flops'] / 1e6:.1f} MFLOPs per "
            f"example, from {before['parameters']:,} and {before['flops'] / 1e6:.1f} "
            f"({after['flops'] / before['flops']:.0%} of the FLOPs)"
        )


def prune_checkpoint(
    checkpoint: Path, sparsity: float, epochs: int, method: str, recipe: Path | None, out: Path | None,
    overrides: list[str], parser: argparse.ArgumentParser,
) -> Path:  # fmt: skip
    """Fine-tune ``checkpoint`` with a ``Prune`` callback; the path of the run's ``last.ckpt``."""
    import yaml

    from zoo.checkpoints import load_checkpoint
    from zoo.lightning_cli import ZooLightningCLI

    loaded = load_checkpoint(checkpoint)
    if recipe is None:
        if loaded.metadata.recipe is None:
            parser.error(f"{checkpoint} records no recipe (not written by zoo fit): pass --config")
        text = loaded.metadata.recipe.text
    else:
        text = recipe.read_text()
    config = yaml.safe_load(text) or {}
    model_args = (config.get("model") or {}).get("init_args") or {}
    if not isinstance(model_args.get("backbone", "x"), str):
        parser.error("zoo prune fine-tunes a backbone given by name in the recipe (model.init_args.backbone)")
    backbone_kwargs = {**(model_args.get("backbone_kwargs") or {}), "weights": str(checkpoint.resolve())}
    prune = {"class_path": "zoo.callbacks.Prune", "init_args": {
        "sparsity": sparsity, "method": method, "start_epoch": 0, "end_epoch": max(0, epochs // 2 - 1)}}  # fmt: skip
    # A recorded recipe names the original run's logger and folder; the pruned run is filed under --out instead.
    trainer = config.get("trainer") or {}
    for key in ("logger", "default_root_dir"):
        trainer.pop(key, None)
    name = f"{model_args.get('backbone', 'model')}-{method}-{sparsity:g}"
    with tempfile.TemporaryDirectory() as tmp:
        recipe_file = Path(tmp) / f"{name}.yaml"
        recipe_file.write_text(yaml.safe_dump(config, sort_keys=False))
        cli = ZooLightningCLI(args=[
            "fit", "--config", str(recipe_file), "--model.init_args.backbone_kwargs", json.dumps(backbone_kwargs),
            "--trainer.max_epochs", str(epochs), "--trainer.callbacks+", json.dumps(prune),
            "--trainer.default_root_dir", str(out or Path("runs") / "pruned"), *overrides,
        ])  # fmt: skip
    return Path(cli.trainer.checkpoint_callback.last_model_path)


def compare_exported_size(checkpoint: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Parameters and inference FLOPs (batch 1) of the checkpoint's network before and after channel removal."""
    from zoo.checkpoints import load_checkpoint
    from zoo.pruning.masks import example_inputs_of, remove_pruned_channels

    task = load_checkpoint(checkpoint).task
    before = _size(task.inference_module(), task)
    remove_pruned_channels(task.backbone, example_inputs_of(task))
    return before, _size(task.inference_module(), task)


def _size(module: torch.nn.Module, task: Any) -> dict[str, int]:
    from torch.utils.flop_counter import FlopCounterMode

    from zoo.pruning.masks import example_inputs_of

    inputs = example_inputs_of(task, batch=1)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module.eval()(*inputs)
    return {"parameters": sum(p.numel() for p in module.parameters()), "flops": int(counter.get_total_flops())}
