"""Time to accuracy: training seconds to reach a test accuracy, zoo beside the same network in a plain loop.

    python benchmarks/time_to_accuracy.py RECIPE [--seeds 3] [--target 0.907] [--within 30 300] [--out F] [-- ARGS]

For every seed the recipe trains twice, from the same seed: through ``trainer.fit`` as ``zoo fit`` builds it
(validation off) and in the plain loop of ``benchmarks/plain_loop.py`` (same network, settings and batches).
At the end of every epoch the clock stops, the test accuracy of the weights a user would evaluate (the EMA
average when the recipe keeps one) is measured on the test split, and the clock restarts: each run gives a
timeline of (training seconds, test accuracy) with evaluation excluded, as airbench measures. With
``--warmup_run`` (default on a GPU) one untimed epoch of each side runs first, so that ``torch.compile`` and
cuDNN autotuning are not counted, as airbench's figure excludes compilation.

Prints and records, per side: the seconds to ``--target`` (the first epoch end at or above it), the best
accuracy within each budget of ``--within`` seconds, and the final accuracy, each per seed and as mean and
standard deviation. Arguments after ``--`` are added to the recipe's (``zoo fit`` overrides). ``--smoke`` runs a
few batches of the shipped mini CIFAR-10 (for CI).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_loop import PlainLoop, synchronize
from recipe_accuracy import measured_here, write_record
from typing_extensions import override

from zoo.arguments import split_passed_on
from zoo.lightning_cli import ZooLightningCLI

REPO = Path(__file__).resolve().parents[1]
SMOKE = ("--data.init_args.variant", "mini", "--data.init_args.batch_size", "32", "--trainer.max_epochs", "2",
         "--trainer.limit_train_batches", "3", "--trainer.precision", "32-true")  # fmt: skip


@torch.no_grad()
def test_accuracy(model: nn.Module, data: Any, device: torch.device, bf16: bool, channels_last: bool) -> float:
    """Top-1 accuracy of ``model`` on ``data``'s test split (the count is read once, at the end)."""
    was_training = model.training
    model.eval()
    correct, total = torch.zeros((), device=device, dtype=torch.long), 0
    for images, labels in data.test_dataloader():
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            correct += (model(images).argmax(dim=1) == labels).sum()
        total += len(labels)
    model.train(was_training)
    return int(correct) / total


class AccuracyClock(L.Callback):
    """Training seconds (evaluation excluded) and test accuracy at the end of every epoch of ``trainer.fit``."""

    def __init__(self) -> None:
        self.timeline: list[tuple[float, float]] = []
        self._elapsed = 0.0
        self._started = 0.0

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(pl_module.device)
        self._started = time.perf_counter()

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(pl_module.device)
        self._elapsed += time.perf_counter() - self._started
        model = pl_module.backbone
        ema = next((cb for cb in trainer.callbacks if type(cb).__name__ == "EMA"), None)
        if ema is not None and ema.average is not None:
            model = copy.deepcopy(model)
            ema.copy_to(model)
        bf16 = "bf16" in str(trainer.precision)
        accuracy = test_accuracy(model, trainer.datamodule, pl_module.device, bf16, _channels_last(pl_module))
        self.timeline.append((round(self._elapsed, 3), accuracy))
        synchronize(pl_module.device)
        self._started = time.perf_counter()


def _channels_last(task: Any) -> bool:
    return bool(getattr(task, "channels_last", False))


def _build(recipe: Path, seed: int, folder: Path, extra: list[str]) -> ZooLightningCLI:
    args = [
        "--config", str(recipe), "--seed_everything", str(seed),
        "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        "--trainer.logger.init_args.save_dir", str(folder), *extra,
    ]  # fmt: skip
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI must not read this script's own arguments
    try:
        return ZooLightningCLI(args=args, run=False)
    finally:
        sys.argv = argv


def run_zoo(recipe: Path, seed: int, folder: Path, extra: list[str]) -> list[tuple[float, float]]:
    """The (seconds, test accuracy) timeline of the recipe through ``trainer.fit``."""
    cli = _build(recipe, seed, folder, extra)
    clock = AccuracyClock()
    cli.trainer.callbacks.append(clock)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return clock.timeline


def run_plain(recipe: Path, seed: int, folder: Path, extra: list[str]) -> list[tuple[float, float]]:
    """The (seconds, test accuracy) timeline of the same network, settings and batches in a plain loop."""
    cli = _build(recipe, seed, folder, extra)
    trainer = cli.trainer
    cli.datamodule.setup("fit")
    limit = trainer.limit_train_batches
    per_epoch = len(cli.datamodule.train_dataloader())
    per_epoch = min(per_epoch, limit) if isinstance(limit, int) else int(per_epoch * limit)
    loop = PlainLoop(cli, "image", trainer.max_epochs * per_epoch)
    timeline, elapsed = [], 0.0
    for _ in range(trainer.max_epochs):
        synchronize(loop.device)
        started = time.perf_counter()
        for batch in itertools.islice(loop.epoch(), per_epoch):
            loop.step(batch)
        synchronize(loop.device)
        elapsed += time.perf_counter() - started
        accuracy = test_accuracy(loop.evaluation_model(), loop.data, loop.device, loop.bf16, loop.channels_last)
        timeline.append((round(elapsed, 3), accuracy))
    return timeline


def summarise(timelines: list[list[tuple[float, float]]], target: float, within: list[float]) -> dict[str, Any]:
    """Per-seed and mean/std figures of a side's timelines."""

    def stats(values: list[float | None]) -> dict[str, Any]:
        known = [v for v in values if v is not None]
        return {
            "per_seed": values,
            "mean": round(statistics.mean(known), 4) if known else None,
            "std": round(statistics.stdev(known), 4) if len(known) > 1 else None,
        }

    reached = [next((s for s, a in line if a >= target), None) for line in timelines]
    best = {
        str(budget): stats([max((a for s, a in line if s <= budget), default=None) for line in timelines])
        for budget in within
    }
    return {
        "seconds_to_target": stats(reached),
        "best_accuracy_within_seconds": best,
        "final_accuracy": stats([line[-1][1] for line in timelines]),
        "timelines": timelines,
    }


def main() -> None:
    """Run the seeds of both sides and print (and append) one record."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.907)
    parser.add_argument("--within", type=float, nargs="*", default=[30.0, 300.0])
    parser.add_argument("--warmup_run", action=argparse.BooleanOptionalAction, default=torch.cuda.is_available())
    parser.add_argument("--out", type=Path)
    parser.add_argument("--smoke", action="store_true", help="a few batches of the shipped mini CIFAR-10")
    own, passed_on = split_passed_on(sys.argv[1:])
    args = parser.parse_args(own)
    recipe = args.recipe.resolve()
    extra = [*(SMOKE if args.smoke else ()), *passed_on]
    runs = {"zoo": run_zoo, "plain": run_plain}
    timelines: dict[str, list[list[tuple[float, float]]]] = {"zoo": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        if args.warmup_run:
            for side, run in runs.items():
                run(recipe, 0, Path(tmp) / f"warmup-{side}", [*extra, "--trainer.max_epochs", "1"])
        for seed in range(args.seeds):
            for side, run in runs.items():
                timelines[side].append(run(recipe, seed, Path(tmp) / f"{side}{seed}", extra))
                seconds, accuracy = timelines[side][-1][-1]
                print(f"{side:<5} seed {seed}: test acc {accuracy:.4f} after {seconds:.2f} s of training", flush=True)
    record = {
        "benchmark": "time_to_accuracy",
        "recipe": str(recipe.relative_to(REPO)) if recipe.is_relative_to(REPO) else str(recipe),
        "overrides": extra,
        "target": args.target,
        "seeds": args.seeds,
        "warmup_run": args.warmup_run,
        **{side: summarise(lines, args.target, args.within) for side, lines in timelines.items()},
        **measured_here("time_to_accuracy.py"),
    }
    write_record(record, args.out)


if __name__ == "__main__":
    main()
