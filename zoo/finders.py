"""``zoo tune-batch-size`` and ``zoo lr-find``: Lightning's batch-size and learning-rate finders on a recipe.

Both build the recipe as ``zoo fit`` does (nothing is written outside a temporary folder, except the LR plot
asked for) and print the override to use; neither rewrites the recipe.

The batch-size finder is Lightning's, in binary-search mode. On a GPU it doubles the batch until CUDA runs out
of memory, then bisects. On a CPU running out of memory kills the process instead of raising, so zoo adds two
limits: ``--max_val`` (default 1024 on a CPU) and a guard that predicts each trial's memory from the last
one's growth and stops before a trial would take more than 80% of the memory that was available at the start
(reported to Lightning as the out-of-memory error it expects, so the search bisects as on a GPU). Every trial
is timed, which gives the throughput-versus-batch-size table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from zoo.errors import ConfigError
from zoo.memory import resident_mb

__all__ = ["find_batch_size", "find_learning_rate", "run_batch_size_command", "run_lr_find_command"]

_MEMORY_SHARE = 0.8
_CPU_MAX_VAL = 1024
_UNTIMED_STEPS = 2


def _build(args: list[str], folder: str) -> Any:
    from zoo.lightning_cli import ZooLightningCLI

    return ZooLightningCLI(
        args=[
            *args, "--trainer.logger", "false", "--trainer.default_root_dir", folder, "--test_after_fit", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.num_sanity_val_steps", "0",
        ],
        run=False,
    )  # fmt: skip


class _TrialClock:
    """Step times per batch size over the finder's trials; on a CPU, the memory guard described above.

    Lightning turns every callback off while the finder's trials run, so the clock rides on the task's own
    batch hooks instead (:func:`_riding`).
    """

    def __init__(self, guard_memory: bool, steps_per_trial: int) -> None:
        self.steps_per_trial = steps_per_trial
        self.completed: set[int] = set()
        self.times: dict[int, list[float]] = {}
        self.peak_mb: dict[int, float] = {}
        self._last: float | None = None
        self._size: int | None = None
        self._baseline = resident_mb()
        self._budget = _MEMORY_SHARE * _available_mb() if guard_memory else None
        self._growth: dict[int, float] = {}

    def on_train_batch_start(self, trainer: L.Trainer, batch_idx: int) -> None:
        """Start timing a step; at a new batch size, check there is room for it first."""
        size = int(trainer.datamodule.batch_size)
        if size != self._size:
            self._size, self._last = size, None
            self._check_room(size)
        self._last = self._last or time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, batch_idx: int) -> None:
        """Record the step's time and the memory in use."""
        now, size = time.perf_counter(), int(trainer.datamodule.batch_size)
        if self._last is not None and batch_idx >= _UNTIMED_STEPS:  # loader start-up, kernels for a new shape
            self.times.setdefault(size, []).append(now - self._last)
        if batch_idx == self.steps_per_trial - 1:
            self.completed.add(size)
        self._last = now
        resident = resident_mb()
        self.peak_mb[size] = max(self.peak_mb.get(size, 0.0), resident)
        self._growth[size] = max(self._growth.get(size, 0.0), resident - self._baseline)

    def _check_room(self, size: int) -> None:
        """Stop a trial whose memory, scaled from the largest smaller one, would not fit the budget."""
        smaller = [s for s in self._growth if s < size]
        if self._budget is None or not smaller:
            return
        last = max(smaller)
        predicted = self._growth[last] * size / last
        if predicted > self._budget:
            # Lightning's finder treats exactly this message as running out of CPU memory and bisects.
            raise RuntimeError(
                f"DefaultCPUAllocator: can't allocate memory: batch {size} would need about {predicted:.0f} MB "
                f"more (batch {last} took {self._growth[last]:.0f} MB), over {self._budget:.0f} MB"
            )

    def table(self) -> list[dict[str, float]]:
        """``[{"batch_size", "samples_per_second", "peak_resident_mb"}]`` for the sizes that ran."""
        rows = []
        for size, times in sorted(self.times.items()):
            rows.append(
                {
                    "batch_size": size,
                    "samples_per_second": round(size / statistics.median(times), 1),
                    "peak_resident_mb": round(self.peak_mb.get(size, 0.0), 1),
                }
            )
        return rows


@contextmanager
def _riding(
    module: L.LightningModule,
    on_start: Callable[[int], None] | None = None,
    on_end: Callable[[Any, int], None] | None = None,
) -> Iterator[None]:
    """Run ``on_start(batch_idx)`` and ``on_end(outputs, batch_idx)`` around every training step of ``module``.

    Lightning's finders turn callbacks off while they run, but still call the module's own hooks: these are
    wrapped on the instance for the duration and given back afterwards.
    """
    start, end = module.on_train_batch_start, module.on_train_batch_end

    def wrapped_start(batch: Any, batch_idx: int) -> Any:
        if on_start is not None:
            on_start(batch_idx)
        return start(batch, batch_idx)

    def wrapped_end(outputs: Any, batch: Any, batch_idx: int) -> None:
        end(outputs, batch, batch_idx)
        if on_end is not None:
            on_end(outputs, batch_idx)

    module.on_train_batch_start, module.on_train_batch_end = wrapped_start, wrapped_end  # type: ignore[method-assign]
    try:
        yield
    finally:
        for hook in ("on_train_batch_start", "on_train_batch_end"):
            module.__dict__.pop(hook, None)


def _available_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 / 2


def find_batch_size(
    args: list[str], max_val: int | None = None, init_val: int = 2, steps_per_trial: int = 5
) -> tuple[int, list[dict[str, float]]]:
    """The largest batch size that fits, and samples per second at each size tried.

    Args:
        args: ``zoo fit`` arguments (``--config R`` and overrides).
        max_val: The largest size tried (default: 1024 on a CPU, 8192 on a GPU).
        init_val: The first size tried.
        steps_per_trial: Training steps at each size (the first two are not timed).

    Returns:
        The largest size whose trial ran all its steps (Lightning's finder stops at ``max_val`` without trying
        it, and may name a size it did not run; this is one that did run), and the table.
    """
    from lightning.pytorch.tuner import Tuner

    with tempfile.TemporaryDirectory() as folder:
        cli = _build([*args, "--trainer.limit_val_batches", "0"], folder)
        on_cpu = cli.trainer.strategy.root_device.type == "cpu"
        if not hasattr(cli.datamodule, "batch_size"):
            raise ConfigError(f"{type(cli.datamodule).__name__} has no batch_size to tune")
        if steps_per_trial <= _UNTIMED_STEPS:
            raise ConfigError(f"steps_per_trial must be above {_UNTIMED_STEPS}, got {steps_per_trial}")
        clock = _TrialClock(guard_memory=on_cpu, steps_per_trial=steps_per_trial)
        # Lightning's first trial reuses a loader built before it set init_val (the recipe's batch size would be
        # tried under init_val's name): start the data module at init_val.
        cli.datamodule.batch_size = init_val
        limit = max_val or (_CPU_MAX_VAL if on_cpu else 8192)
        riding = _riding(
            cli.model,
            on_start=lambda index: clock.on_train_batch_start(cli.trainer, index),
            on_end=lambda _, index: clock.on_train_batch_end(cli.trainer, index),
        )
        with riding, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*could not find the monitored key")
            Tuner(cli.trainer).scale_batch_size(  # max_val one doubling up: Lightning stops before trying it
                cli.model, datamodule=cli.datamodule, mode="binsearch", init_val=init_val, max_val=2 * limit,
                steps_per_trial=steps_per_trial, margin=0.0,
            )  # fmt: skip
    fitted = [size for size in clock.completed if size <= limit]
    if not fitted:
        raise ConfigError(f"no batch size from {init_val} up ran {steps_per_trial} steps; try a smaller --init_val")
    return max(fitted), [row for row in clock.table() if row["batch_size"] <= limit]


def find_learning_rate(
    args: list[str], plot: Path | None, min_lr: float = 1e-6, max_lr: float = 1.0, num_training: int = 100
) -> tuple[float | None, Path | None]:
    """Lightning's LR range test on the recipe: the suggested learning rate, and the plot written."""
    from lightning.pytorch.tuner import Tuner

    with tempfile.TemporaryDirectory() as folder:
        cli = _build([*args, "--trainer.limit_val_batches", "0"], folder)
        losses: list[float] = []
        record = _riding(cli.model, on_end=lambda outputs, _: losses.append(float(_loss_of(outputs))))
        with record, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*could not find the monitored key")
            finder = Tuner(cli.trainer).lr_find(
                cli.model, datamodule=cli.datamodule, min_lr=min_lr, max_lr=max_lr, num_training=num_training,
                update_attr=False,
            )  # fmt: skip
    if finder is None:
        return None, None
    lrs = finder.results["lr"]
    curve = _smoothed(losses[: len(lrs)])
    suggestion = _steepest_descent(lrs, curve)
    if plot is not None:
        _plot(lrs, curve, suggestion, plot)
    return suggestion, plot


def _steepest_descent(lrs: list[float], curve: list[float], skip_begin: int = 10, skip_end: int = 1) -> float | None:
    """Lightning's rule (the learning rate where the loss falls fastest, ends skipped), on the debiased curve."""
    kept = curve[skip_begin : len(curve) - skip_end]
    if len(kept) < 3:
        return None
    return float(lrs[skip_begin + int(np.argmin(np.gradient(np.asarray(kept))))])


def _loss_of(outputs: Any) -> Any:
    loss = outputs["loss"] if isinstance(outputs, dict) else outputs
    return loss.detach() if hasattr(loss, "detach") else loss


def _smoothed(losses: list[float], beta: float = 0.98) -> list[float]:
    """An exponential moving average of the raw losses, debiased by the number of losses it has seen."""
    average, out = 0.0, []
    for count, loss in enumerate(losses, start=1):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta**count))
    return out


def _plot(lrs: list[float], losses: list[float], suggestion: float | None, path: Path) -> None:
    """Loss against learning rate, drawn from the raw losses of each step.

    Lightning's own curve debiases its moving average by the global step, which is already one ahead when it
    reads the loss: its first points lie far below the true loss and the curve starts by rising for tens of
    steps (see also upstream issue #14167), which reads as "the loss grows with the learning rate", and its
    suggestion (the steepest fall) lands on that slope. The suggestion here applies Lightning's rule to this
    curve.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(lrs[: len(losses)], losses)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss (smoothed)")
    if suggestion is not None:
        index = min(range(len(losses)), key=lambda i: abs(lrs[i] - suggestion))
        axes.plot([lrs[index]], [losses[index]], "o", color="tab:red", label=f"suggestion {suggestion:.2e}")
        axes.legend()
    axes.set_title(f"LR range test, {len(lrs)} steps")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def _fit_args(parser: argparse.ArgumentParser, rest: list[str]) -> list[str]:
    if "--config" not in rest and not any(a.startswith("--config=") for a in rest):
        parser.error(f"give the recipe: {parser.prog} --config recipes/quickstart.yaml")
    return rest


def run_batch_size_command(argv: list[str]) -> None:
    """``zoo tune-batch-size --config R [--max_val N] [--init_val N] [zoo fit overrides]``."""
    parser = argparse.ArgumentParser(
        prog="zoo tune-batch-size",
        description="The largest training batch that fits (Lightning's finder, binary search) and throughput at "
        "each size tried. Other arguments are `zoo fit` arguments.",
    )
    parser.add_argument("--max_val", type=int, default=None, help="largest size to try (CPU default 1024)")
    parser.add_argument("--init_val", type=int, default=2, help="first size to try")
    parser.add_argument("--steps_per_trial", type=int, default=5, help="training steps at each size (> 2)")
    args, rest = parser.parse_known_args(argv)
    if args.init_val < 1 or (args.max_val is not None and args.max_val < args.init_val):
        parser.error(f"need 1 <= --init_val <= --max_val, got {args.init_val} and {args.max_val}")
    found, table = find_batch_size(_fit_args(parser, rest), args.max_val, args.init_val, args.steps_per_trial)
    print(f"{'batch':>8}  {'samples/s':>10}  {'peak MB':>8}")
    for row in table:
        print(f"{row['batch_size']:>8}  {row['samples_per_second']:>10.1f}  {row['peak_resident_mb']:>8.0f}")
    if table:
        fastest = max(table, key=lambda row: row["samples_per_second"])
        print(f"highest throughput: batch {fastest['batch_size']} ({fastest['samples_per_second']:.1f} samples/s)")
    print(f"largest batch that fits: {found}")
    print(f"use: --data.init_args.batch_size {found}")


def run_lr_find_command(argv: list[str]) -> None:
    """``zoo lr-find --config R [--out lr_find.png] [--min_lr] [--max_lr] [--num_training] [overrides]``."""
    parser = argparse.ArgumentParser(
        prog="zoo lr-find",
        description="Lightning's learning-rate range test on a recipe: the loss at exponentially growing "
        "learning rates, a plot, and a suggestion. Other arguments are `zoo fit` arguments.",
    )
    parser.add_argument("--out", type=Path, default=Path("lr_find.png"), help="where the plot goes (PNG)")
    parser.add_argument("--min_lr", type=float, default=1e-6)
    parser.add_argument("--max_lr", type=float, default=1.0)
    parser.add_argument("--num_training", type=int, default=100, help="steps of the range test")
    args, rest = parser.parse_known_args(argv)
    if not 0 < args.min_lr < args.max_lr:
        parser.error(f"need 0 < --min_lr < --max_lr, got {args.min_lr} and {args.max_lr}")
    suggestion, plot = find_learning_rate(
        _fit_args(parser, rest), args.out, args.min_lr, args.max_lr, args.num_training
    )
    if suggestion is None:
        print("no suggestion: the loss did not fall over the range (try a wider --min_lr/--max_lr)")
        return
    print(f"suggested learning rate: {suggestion:.3g}  (plot: {plot})")
    print(f"use: --model.init_args.optimizer.init_args.lr {suggestion:.3g}")
