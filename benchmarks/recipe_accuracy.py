"""Train recipes to the end and record their test metrics, wall time and hardware as JSON lines.

    python benchmarks/recipe_accuracy.py recipes/cifar10/resnet18.yaml recipes/cifar10/speedrun_net.yaml \
        --out benchmarks/results/cifar10.jsonl [-- --trainer.max_epochs 5 ...]

Each recipe runs in-process through the same LightningCLI as ``zoo fit``; arguments after ``--`` are passed
to every run. One JSON object per recipe is appended to ``--out`` and printed: the recipe, the command,
final test and validation metrics, best validation score, wall time, and the device, torch and Lightning versions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from zoo.lightning_cli import ZooLightningCLI
from zoo.provenance import git_state, hardware, packages

REPO = Path(__file__).resolve().parents[1]


def measured_here(script: str) -> dict[str, object]:
    """What every benchmark record ends with: the command that re-creates it, the code, packages, machine, date."""
    return {
        "command": f"python benchmarks/{script} " + " ".join(sys.argv[1:]),
        "git": git_state(REPO),
        "packages": packages(),
        "hardware": hardware(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def write_record(record: dict[str, object], out: Path | None) -> None:
    """Print ``record`` as one JSON line and append it to ``out`` (created with its folder) when given."""
    print(json.dumps(record), flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as f:
            f.write(json.dumps(record) + "\n")


def run_recipe(recipe: str, extra: list[str]) -> dict[str, object]:
    """Train one recipe with ``zoo fit`` semantics and return its record."""
    args = ["fit", "--config", recipe, "--trainer.enable_progress_bar", "false", *extra]
    started = time.perf_counter()
    cli = ZooLightningCLI(args=args)
    wall = time.perf_counter() - started
    trainer = cli.trainer
    checkpoint = trainer.checkpoint_callback
    return {
        "recipe": recipe,
        "command": "zoo " + " ".join(args),
        "test": {k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if k.startswith("test/")},
        "val": {k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if k.startswith("val/")},
        "best_val": None
        if checkpoint is None or checkpoint.best_model_score is None
        else round(float(checkpoint.best_model_score), 4),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "wall_s": round(wall, 1),
        "hardware": hardware(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def main() -> None:
    """Run every recipe given on the command line."""
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="+")
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file the records are appended to")
    args = parser.parse_args(own)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sys.argv = sys.argv[:1]  # the recipes' arguments are passed to LightningCLI directly
    for recipe in args.recipes:
        write_record(run_recipe(recipe, extra), args.out)


if __name__ == "__main__":
    main()
