"""Run one recipe of a suite with one seed and return its leaderboard row."""

from __future__ import annotations

import hashlib
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
from typing_extensions import override

from zoo.leaderboard.rows import validate_row
from zoo.leaderboard.suites import Suite, SuiteRecipe
from zoo.memory import PeakResidentMemory
from zoo.provenance import git_state, hardware, packages
from zoo.tasks.base import ZooTask

__all__ = ["FitTimer", "run_entry", "training_flops_per_sample"]


class FitTimer(L.Callback):
    """Wall time of ``fit`` (validation included) and the training samples it saw.

    What a sample is, the task says (``count_samples``): an image or a token window, a graph of a batch of
    graphs, a labelled training node of a full graph.
    """

    def __init__(self) -> None:
        self.started: float | None = None
        self.seconds = 0.0
        self.samples: int | torch.Tensor = 0

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.samples += pl_module.count_samples(batch)  # may be a device tensor: read once, after training

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter()

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.started is not None:
            self.seconds = time.perf_counter() - self.started


def run_entry(suite: Suite, entry: SuiteRecipe, budget: str, seed: int, repo: Path, export: bool = True) -> dict:
    """Train ``entry`` under ``budget`` with ``seed`` through ``zoo fit`` (in this process) and build its row.

    The row holds the recipe and its SHA-256, the overrides, git commit and dirtiness, package versions,
    hardware, seed, final metrics and the quality figure, parameters, training FLOPs per sample, training
    wall time and throughput, peak memory, the export status of the best checkpoint, and the ``zoo fit``
    command that reproduces it.

    Raises:
        KeyError: If the run did not produce the suite's quality metric (the message lists what it produced).
    """
    from zoo.lightning_cli import ZooLightningCLI

    overrides = suite.overrides(entry, budget)
    fit_args = ["fit", "--config", str(repo / entry.recipe), "--seed_everything", str(seed), *overrides]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI must not read the leaderboard's own arguments
    try:
        with PeakResidentMemory() as resident:
            cli = ZooLightningCLI(args=[*fit_args, "--trainer.callbacks+=zoo.leaderboard.run.FitTimer"])
    finally:
        sys.argv = argv
    trainer, task = cli.trainer, cli.model
    timer = next(cb for cb in trainer.callbacks if isinstance(cb, FitTimer))
    metrics = {k: round(float(v), 6) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if entry.metric not in metrics:
        raise KeyError(f"{entry.recipe}: the run produced no {entry.metric!r}; it produced {sorted(metrics)}")
    train_seconds = timer.seconds
    gpu_peak_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    samples = int(timer.samples) * trainer.world_size
    row = {
        "suite": suite.name,
        "recipe": entry.recipe,
        "recipe_sha256": hashlib.sha256((repo / entry.recipe).read_bytes()).hexdigest(),
        "overrides": overrides,
        "budget": budget,
        "seed": seed,
        "git": git_state(repo),
        "packages": packages(),
        "hardware": hardware(),
        "metrics": metrics,
        "quality": {"metric": entry.metric, "value": metrics[entry.metric], "higher_is_better": entry.higher_is_better},
        "params": sum(p.numel() for p in task.backbone.parameters()),
        "flops_per_sample": training_flops_per_sample(task, cli.datamodule),
        "train_seconds": round(train_seconds, 2),
        "samples_per_second": round(samples / train_seconds, 1) if samples and train_seconds > 0 else None,
        "peak_memory_mb": round(gpu_peak_mb if torch.cuda.is_available() else resident.peak_mb, 1),
        "export": _export_status(trainer) if export else {"skipped": True},
        "command": "zoo " + shlex.join(fit_args).replace(str(repo) + "/", ""),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    return validate_row(row)


def training_flops_per_sample(task: ZooTask, data: Any) -> int | None:
    """Forward and backward FLOPs per training sample, when the task counts them (None otherwise)."""
    if data is None:
        return None
    batch = data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)  # e.g. keys -> on-device images
    flops = task.training_flops(batch)
    return None if flops is None else int(flops // int(task.count_samples(batch)))


def _export_status(trainer: Any) -> dict[str, Any]:
    """Export the best (else last) checkpoint to every format and record whether each verified."""
    from export import export_checkpoint

    saver = trainer.checkpoint_callback
    path = getattr(saver, "best_model_path", None) or getattr(saver, "last_model_path", None)
    if not path:
        return {"error": "no checkpoint was saved"}
    with tempfile.TemporaryDirectory() as folder:
        try:
            report = export_checkpoint(path, folder)
        except Exception as err:  # the row records why export failed instead of losing the run
            return {"error": f"{type(err).__name__}: {err}"}
    return {row["format"]: row["status"] for row in report.rows}
