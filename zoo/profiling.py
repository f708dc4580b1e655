"""Where a training step's time and memory go: ``zoo profile`` and ``zoo fit --profile``.

``zoo profile --config R`` builds the recipe as ``zoo fit`` does, trains ``warmup + steps`` optimizer steps with
validation off under Lightning's :class:`~lightning.pytorch.profilers.SimpleProfiler`, and splits the mean
step of the last ``steps`` into phases: waiting for data (the loader and the transfer to the device), forward
(the task's ``training_step``: forward, loss, metrics, logging), backward, optimizer (its step and
``zero_grad``), callbacks and hooks, and the rest of Lightning's loop (measured wall time minus the phases).
On a GPU it also counts host-device synchronisations per step (``torch.cuda.set_sync_debug_mode``); peak
resident memory (and GPU memory) are reported on every device. ``--leak_check`` records the heap in use (glibc's
``mallinfo2``; resident memory where it is missing) after every step and fits a line through it: a leak shows
as a slope that does not fall to zero. Resident memory alone would hide a leak in a process that has freed
memory to reuse.

``zoo fit --profile simple|advanced|pytorch`` uses :mod:`zoo.profilers`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.profilers import SimpleProfiler
from typing_extensions import override

from zoo.errors import ConfigError
from zoo.memory import heap_in_use_mb, peak_resident_mb, resident_mb

__all__ = ["StepProfile", "format_profile", "profile_recipe", "run_profile_command"]

_DATA_ACTIONS = ("train_dataloader_next", "batch_to_device", "transfer_batch_to_device", "on_after_batch_transfer",
                 "on_before_batch_transfer")  # fmt: skip
_CLOSURE_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step", "configure_gradient_clipping",
                  "on_before_zero_grad")  # fmt: skip
_DATA_ADVICE_SHARE = 0.25


@dataclass
class StepProfile:
    """Where the mean training step of a recipe goes.

    Attributes:
        recipe: The recipe profiled.
        steps: Steps measured (after ``warmup``).
        warmup: Steps before the measurement.
        batch_size: Samples in a training batch.
        step_ms: Mean wall time of a step.
        phases_ms: ``{"data", "forward", "backward", "optimizer", "callbacks and hooks", "Lightning loop"}``.
        syncs_per_step: Host-device synchronisations per step (``None`` on a CPU).
        peak_resident_mb: Peak resident memory of the process.
        peak_gpu_mb: Peak GPU memory allocated (``None`` on a CPU).
        memory_mb: Memory after each measured step (``--leak_check``): the heap in use, else resident memory.
        memory_kind: ``"heap in use"`` or ``"resident"``: what ``memory_mb`` measures.
        leak_mb_per_step: Slope of a line fitted through ``memory_mb`` (``--leak_check``).
        advice: What to change, when something dominates.
    """

    recipe: str
    steps: int
    warmup: int
    batch_size: int
    step_ms: float
    phases_ms: dict[str, float]
    syncs_per_step: float | None
    peak_resident_mb: float
    peak_gpu_mb: float | None
    memory_mb: list[float] = field(default_factory=list)
    memory_kind: str | None = None
    leak_mb_per_step: float | None = None
    advice: list[str] = field(default_factory=list)


class _StepClock(L.Callback):
    """Wall time and resident memory at the end of every training step; GPU syncs inside the window."""

    def __init__(self, warmup: int, leak_check: bool) -> None:
        self.warmup, self.leak_check = warmup, leak_check
        self.ends: list[float] = []
        self.resident: list[float] = []
        self.memory_kind: str | None = None
        self.syncs = 0
        self._catcher: Any = None
        self.batch_size = 0

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step < self.warmup:
            return
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self.ends.append(time.perf_counter())
        if self.leak_check:
            heap = heap_in_use_mb()
            self.memory_kind = "resident" if heap is None else "heap in use"
            self.resident.append(resident_mb() if heap is None else heap)
        if trainer.global_step == self.warmup:
            self.batch_size = int(getattr(pl_module, "count_samples", _first_dim)(batch))
            if pl_module.device.type == "cuda":
                self._count_syncs()

    def _count_syncs(self) -> None:
        self._catcher = warnings.catch_warnings(record=True)
        self.records = self._catcher.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._catcher is not None:
            torch.cuda.set_sync_debug_mode("default")
            self.syncs = sum("synchronizing" in str(w.message) for w in self.records)
            self._catcher.__exit__(None, None, None)
            self._catcher = None


def _first_dim(batch: Any) -> int:
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return int(first.shape[0])


def profile_recipe(args: list[str], steps: int = 20, warmup: int = 5, leak_check: bool = False) -> StepProfile:
    """Train ``warmup + steps`` steps of the recipe given by ``args`` (``zoo fit`` arguments) and profile them.

    Nothing is written outside a temporary folder: validation, the logger and the run folder are off.
    """
    from zoo.lightning_cli import ZooLightningCLI

    with tempfile.TemporaryDirectory() as folder:
        cli = ZooLightningCLI(
            args=[
                *args, "--trainer.max_steps", str(warmup + steps), "--trainer.max_epochs", "-1",
                "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
                "--trainer.logger", "false", "--trainer.default_root_dir", folder, "--test_after_fit", "false",
                "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            ],
            run=False,
        )  # fmt: skip
        profiler = SimpleProfiler(dirpath=folder, filename="simple")
        cli.trainer.profiler = profiler
        clock = _StepClock(warmup, leak_check)
        cli.trainer.callbacks.append(clock)
        device = cli.trainer.strategy.root_device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with warnings.catch_warnings():  # validation is off on purpose: no monitored metric to find
            warnings.filterwarnings("ignore", message=r".*could not find the monitored key")
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if len(clock.ends) < 2:
        raise ConfigError(f"the recipe stopped after {cli.trainer.global_step} steps; profile needs {warmup + 2}")
    measured = len(clock.ends) - 1
    step_ms = 1000 * (clock.ends[-1] - clock.ends[0]) / measured
    phases = _phases(profiler.recorded_durations, measured, step_ms)
    recipe = " ".join(args[args.index("--config") + 1 : args.index("--config") + 2]) if "--config" in args else "-"
    profile = StepProfile(
        recipe=recipe,
        steps=measured,
        warmup=warmup,
        batch_size=clock.batch_size,
        step_ms=round(step_ms, 3),
        phases_ms=phases,
        syncs_per_step=round(clock.syncs / measured, 2) if device.type == "cuda" else None,
        peak_resident_mb=round(peak_resident_mb(), 1),
        peak_gpu_mb=round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
    )
    if leak_check:
        profile.memory_mb = [round(v, 2) for v in clock.resident[1:]]
        profile.memory_kind = clock.memory_kind
        profile.leak_mb_per_step = round(float(np.polyfit(np.arange(measured), clock.resident[1:], 1)[0]), 4)
    profile.advice = _advice(profile, cli.datamodule)
    return profile


def _phases(durations: dict[str, list[float]], steps: int, step_ms: float) -> dict[str, float]:
    """Mean milliseconds per phase over the last ``steps`` steps, from SimpleProfiler's per-action durations."""

    def last(action: str) -> float:
        values = durations.get(action) or []
        return 1000 * float(np.sum(values[-steps:])) / steps if len(values) >= steps else 0.0

    def matching(predicate: Any) -> float:
        return sum(last(action) for action in durations if predicate(action))

    data = matching(lambda a: a.rsplit(".", 1)[-1] in _DATA_ACTIONS or a.endswith("train_dataloader_next"))
    forward = matching(lambda a: a.endswith(".training_step") and a.startswith("[Strategy]"))
    backward = matching(lambda a: a.endswith(".backward") and a.startswith("[Strategy]"))
    optimizer_step = matching(lambda a: a.endswith(".optimizer_step") and a.startswith("[LightningModule]"))

    def is_hook(action: str) -> bool:
        hook = action.rsplit(".", 1)[-1]
        module_hook = action.startswith("[LightningModule]") and hook.startswith(("on_", "lr_scheduler_step"))
        return action.startswith("[Callback]") or (module_hook and hook not in _DATA_ACTIONS)

    hooks = matching(is_hook)
    # Lightning runs training_step, backward, zero_grad and some hooks inside the optimizer's closure: the
    # optimizer's own share (its update and zero_grad) is what the closure's other parts leave.
    inside = matching(lambda a: a.rsplit(".", 1)[-1] in _CLOSURE_HOOKS)
    optimizer = max(0.0, optimizer_step - forward - backward - inside)
    phases = {"data": data, "forward": forward, "backward": backward, "optimizer": optimizer}
    phases["callbacks and hooks"] = hooks
    phases["Lightning loop"] = max(0.0, step_ms - sum(phases.values()))
    return {name: round(value, 3) for name, value in phases.items()}


def _advice(profile: StepProfile, data: Any) -> list[str]:
    advice = []
    share = profile.phases_ms["data"] / profile.step_ms if profile.step_ms else 0.0
    if share >= _DATA_ADVICE_SHARE:
        workers = getattr(data, "num_workers", None)
        advice.append(
            f"waiting for data takes {share:.0%} of a step: raise --data.init_args.num_workers (now {workers}), "
            "keep decoded images in memory or on the device (on_device: true where the data module offers it), "
            "or make augmentation cheaper"
        )
    if profile.syncs_per_step:
        advice.append(
            f"{profile.syncs_per_step:g} host-device synchronisations per step: each stalls the GPU; look for "
            ".item(), .cpu(), printing or Python conditions on GPU tensors in the step"
        )
    if profile.leak_mb_per_step is not None and profile.leak_mb_per_step * profile.steps > 8:
        advice.append(
            f"memory ({profile.memory_kind}) grows by {profile.leak_mb_per_step:.3f} MB per step: something keeps a "
            "reference each step (a tensor logged without .detach(), a list of outputs, a growing cache)"
        )
    return advice


def format_profile(profile: StepProfile) -> str:
    """The profile as a table for a terminal."""
    lines = [
        f"{profile.recipe}: {profile.steps} steps after {profile.warmup} warm-up, batch {profile.batch_size}",
        f"  step                   {profile.step_ms:9.2f} ms  ({1000 * profile.batch_size / profile.step_ms:.1f} "
        "samples/s)",
    ]
    for name, value in profile.phases_ms.items():
        lines.append(f"  {name:<22} {value:9.2f} ms  {value / profile.step_ms:6.1%}")
    syncs = "n/a on CPU" if profile.syncs_per_step is None else f"{profile.syncs_per_step:g}"
    lines.append(f"  host-device syncs/step {syncs}")
    memory = f"  peak memory            {profile.peak_resident_mb:.0f} MB resident"
    if profile.peak_gpu_mb is not None:
        memory += f", {profile.peak_gpu_mb:.0f} MB GPU"
    lines.append(memory)
    if profile.leak_mb_per_step is not None:
        first, last = profile.memory_mb[0], profile.memory_mb[-1]
        lines.append(
            f"  leak check             {profile.leak_mb_per_step:+.4f} MB/step fitted over {profile.steps} steps "
            f"({first:.1f} -> {last:.1f} MB {profile.memory_kind})"
        )
    lines += [f"  advice: {line}" for line in profile.advice]
    return "\n".join(lines)


def run_profile_command(argv: list[str]) -> None:
    """``zoo profile --config R [--steps N] [--warmup W] [--leak_check] [--json] [zoo fit overrides]``."""
    parser = argparse.ArgumentParser(
        prog="zoo profile",
        description="Train a few steps of a recipe and show where a step's time and memory go. Any other "
        "argument is a `zoo fit` argument (--config R, --trainer.precision ..., --data.init_args.num_workers ...).",
    )
    parser.add_argument("--steps", type=int, default=20, help="steps measured (default 20; 200 for --leak_check)")
    parser.add_argument("--warmup", type=int, default=5, help="steps before measuring")
    parser.add_argument(
        "--leak_check", action="store_true", help="record memory (heap in use) per step and fit a slope"
    )
    parser.add_argument("--json", action="store_true", help="print the profile as JSON")
    args, fit_args = parser.parse_known_args(argv)
    if "--config" not in fit_args and not any(a.startswith("--config=") for a in fit_args):
        parser.error("give the recipe: zoo profile --config recipes/quickstart.yaml")
    if args.steps < 2 or args.warmup < 0:
        parser.error(f"--steps must be >= 2 and --warmup >= 0, got {args.steps} and {args.warmup}")
    steps = 200 if args.leak_check and "--steps" not in argv else args.steps
    profile = profile_recipe(fit_args, steps=steps, warmup=args.warmup, leak_check=args.leak_check)
    print(json.dumps(asdict(profile), indent=2) if args.json else format_profile(profile))
