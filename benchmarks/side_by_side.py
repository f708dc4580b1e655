"""zoo's training loop side by side with a hand-written PyTorch loop: same model, batch, precision and data.

    python benchmarks/side_by_side.py --out benchmarks/results/side_by_side_cpu.jsonl [--cases ...] [--smoke]

For each case (a recipe), every round trains twice from the same seed, in this one process:

* **zoo**: the recipe as ``zoo fit`` builds it (task, data module, trainer, the recipe's callbacks and zoo's
  default ones: TensorBoard logger, progress bar, learning-rate monitor, non-finite-loss guard, checkpointing,
  checkpoint metadata), validation off, ``trainer.fit``;
* **plain**: the same network, optimizer settings, precision and batches (the data module's own
  ``train_dataloader`` and transfer hooks: same decoding, augmentation and workers, or the same on-device
  batches) in a ``for`` loop that a user would write:
  forward, loss, backward, optional clipping, step, warm-up-cosine learning rate, and an EMA with
  ``torch.optim.swa_utils.AveragedModel`` when the recipe has one.

Training samples per second are timed over ``steps`` optimizer steps after ``warmup`` steps (the device is
synchronised at both ends), the two sides alternate which goes first from round to round, and the ratio of the
medians (zoo / plain; 1.0 means no overhead) is printed and appended as one JSON record per case to ``--out``.
Both sides read the same data pipeline on purpose: the ratio measures the training loop (Lightning's Trainer,
the zoo task's step with its metrics and logging, the callbacks), not the data pipeline.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import import_module
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import yaml
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from zoo.leaderboard.rows import environment, git_state, hardware
from zoo.lightning_cli import ZooLightningCLI

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One side-by-side comparison: a recipe, its loss kind, and how many steps to time."""

    recipe: str
    kind: str  # "image" (cross-entropy with the recipe's label smoothing) or "lm" (next-token cross-entropy)
    steps: int
    warmup: int


CASES = {
    "cifar10-cnn": Case("recipes/cifar10/speedrun_net_tiny.yaml", "image", steps=30, warmup=5),
    "shakespeare-gpt": Case("recipes/shakespeare/gpt_nano.yaml", "lm", steps=200, warmup=20),
}
SMOKE_CASES = {  # the quickstart's shipped data instead of CIFAR-10, and a few steps
    "cifar10-cnn": Case("recipes/quickstart.yaml", "image", steps=3, warmup=1),
    "shakespeare-gpt": Case("recipes/shakespeare/gpt_nano.yaml", "lm", steps=3, warmup=1),
}


class StepWindowTimer(L.Callback):
    """Seconds and samples over optimizer steps ``warmup`` to ``warmup + steps`` of ``trainer.fit``."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.started: float | None = None
        self.seconds: float | None = None
        self.samples = 0

    def on_train_batch_start(  # noqa: D102
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.started is None and trainer.global_step == self.warmup:
            _synchronize(pl_module.device)
            self.started = time.perf_counter()

    def on_train_batch_end(  # noqa: D102
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.started is None or self.seconds is not None:
            return
        self.samples += len(batch[0])
        if trainer.global_step == self.warmup + self.steps:
            _synchronize(pl_module.device)
            self.seconds = time.perf_counter() - self.started


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build(case: Case, folder: Path) -> ZooLightningCLI:
    """The recipe's task, data module and trainer, as ``zoo fit`` builds them, with validation off."""
    args = [
        "--config", str(REPO / case.recipe),
        "--trainer.max_steps", str(case.warmup + case.steps),
        "--trainer.limit_val_batches", "0",
        "--trainer.num_sanity_val_steps", "0",
        "--trainer.logger.init_args.save_dir", str(folder),
    ]  # fmt: skip
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI must not read this script's own arguments
    try:
        return ZooLightningCLI(args=args, run=False)
    finally:
        sys.argv = argv


def run_zoo(case: Case, folder: Path) -> tuple[float, int]:
    """Samples per second and batch size of the recipe trained through ``trainer.fit``."""
    cli = _build(case, folder)
    timer = StepWindowTimer(case.warmup, case.steps)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if timer.seconds is None:
        raise RuntimeError(f"{case.recipe}: fit stopped before step {case.warmup + case.steps}")
    return timer.samples / timer.seconds, timer.samples // case.steps


def run_plain(case: Case, folder: Path) -> tuple[float, int]:
    """Samples per second and batch size of the same network, settings and batches in a hand-written loop."""
    cli = _build(case, folder)  # only for the network and the data module the recipe names
    recipe = yaml.safe_load((REPO / case.recipe).read_text())
    device = cli.trainer.strategy.root_device
    model = cli.model.backbone.to(device).train()
    data = cli.datamodule
    data.prepare_data()
    data.setup("fit")
    optimizer = _optimizer(recipe["model"]["init_args"]["optimizer"], model)
    total = case.warmup + case.steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(max(1, total // 20), total))
    decay = _ema_decay(recipe)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True) if decay else None
    clip = recipe.get("trainer", {}).get("gradient_clip_val")
    label_smoothing = recipe["model"]["init_args"].get("label_smoothing", 0.0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled="bf16" in str(cli.trainer.precision))
    started, samples = 0.0, 0
    for step, batch in enumerate(_batches(data)):
        if step == case.warmup:
            _synchronize(device)
            started, samples = time.perf_counter(), 0
        # The data module's own transfer hooks: identity for most, gather-and-augment for on-device images.
        inputs, targets = data.on_after_batch_transfer(data.transfer_batch_to_device(batch, device, 0), 0)
        with autocast:
            logits = model(inputs)
        if case.kind == "lm":
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        else:
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        samples += len(inputs)
        if step + 1 == total:
            _synchronize(device)
            return samples / (time.perf_counter() - started), samples // case.steps
    raise AssertionError("unreachable: _batches never ends")


def _batches(data: L.LightningDataModule) -> Iterator[Any]:
    while True:
        yield from data.train_dataloader()


def _optimizer(config: dict[str, Any], model: torch.nn.Module) -> torch.optim.Optimizer:
    module, _, name = config["class_path"].rpartition(".")
    return getattr(import_module(module), name)(model.parameters(), **config.get("init_args", {}))


def _warmup_cosine(warmup: int, total: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


def _ema_decay(recipe: dict[str, Any]) -> float | None:
    for callback in recipe.get("trainer", {}).get("callbacks", []) or []:
        if callback.get("class_path", "").endswith("EMA"):
            return float(callback.get("init_args", {}).get("decay", 0.9998))
    return None


def compare(name: str, case: Case, rounds: int) -> dict[str, Any]:
    """Alternate zoo and plain runs of ``case`` for ``rounds`` rounds and build the record."""
    per_round: dict[str, list[float]] = {"zoo": [], "plain": []}
    batch = 0
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(rounds):
            order = ("zoo", "plain") if index % 2 == 0 else ("plain", "zoo")
            for side in order:
                L.seed_everything(0, verbose=False)
                rate, batch = (run_zoo if side == "zoo" else run_plain)(case, Path(tmp) / f"{side}{index}")
                per_round[side].append(round(rate, 2))
                print(f"{name:<16} round {index + 1}/{rounds} {side:<5} {rate:10.1f} samples/s", flush=True)
    medians = {side: statistics.median(rates) for side, rates in per_round.items()}
    step_ms = {side: 1000 * batch / rate for side, rate in medians.items()}
    return {
        "benchmark": "side_by_side",
        "case": name,
        "recipe": case.recipe,
        "steps": case.steps,
        "warmup_steps": case.warmup,
        "rounds": rounds,
        "batch_size": batch,
        "samples_per_second": {side: round(rate, 2) for side, rate in medians.items()},
        "step_ms": {side: round(ms, 3) for side, ms in step_ms.items()},
        "overhead_ms_per_step": round(step_ms["zoo"] - step_ms["plain"], 3),
        "per_round": per_round,
        "zoo_over_plain": round(medians["zoo"] / medians["plain"], 3),
        "command": "python benchmarks/side_by_side.py " + " ".join(sys.argv[1:]),
        "git": git_state(REPO),
        "packages": environment(),
        "hardware": hardware(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }


def main() -> None:
    """Run the chosen cases and print (and append) one record each."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--cases", nargs="*", choices=sorted(CASES), default=sorted(CASES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="a few steps, one round, shipped data (for CI)")
    args = parser.parse_args()
    cases = SMOKE_CASES if args.smoke else CASES
    rounds = 1 if args.smoke else args.rounds
    for name in args.cases:
        record = compare(name, cases[name], rounds)
        print(json.dumps(record), flush=True)
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with args.out.open("a") as f:
                f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
