"""What tracking and provenance cost: MLflow logging per training step, and the records taken at start-up.

    python benchmarks/tracking_overhead.py --out benchmarks/results/tracking_overhead_cpu.jsonl [--rounds 5]

Per step: the quickstart recipe trains ``warmup + steps`` steps with validation off, as ``zoo fit`` builds it,
once without tracking and once with ``--tracking mlflow`` (a fresh SQLite store), alternating which goes first
from round to round; training samples per second are timed over the last ``steps`` steps, at zoo's default
``log_every_n_steps`` (50) and at 1 (every step sends its metrics: the worst case). The ratio of the medians is
printed (1.0: no overhead).

At start-up: the environment record (:func:`zoo.provenance.run_environment`), the data fingerprint of the
quickstart data and of the full CIFAR-10 (when ``$ZOO_DATA`` has it), and the time from ``trainer.fit`` to
the first training step with and without tracking (the store, the run's record), and the time to build the
run (parsing, instantiation and, in the first tracked round, MLflow's import).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_accuracy import measured_here, write_record
from side_by_side import StepWindowTimer

from zoo.lightning_cli import ZooLightningCLI
from zoo.provenance import run_environment

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes/quickstart.yaml"


def _timed_fit(
    folder: Path, tracked: bool, log_every: int, warmup: int, steps: int, extra: list[str]
) -> tuple[float, float, float]:
    """Samples per second over the timed steps, seconds to build the CLI, and from ``fit`` to the first step."""
    args = [
        "--config", str(RECIPE), "--trainer.max_steps", str(warmup + steps), "--trainer.limit_val_batches", "0",
        "--trainer.num_sanity_val_steps", "0", "--trainer.default_root_dir", str(folder),
        "--trainer.log_every_n_steps", str(log_every), "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--test_after_fit", "false",
        *(["--tracking", "mlflow"] if tracked else []), *extra,
    ]  # fmt: skip
    argv, sys.argv = sys.argv, sys.argv[:1]
    building = time.perf_counter()
    try:
        cli = ZooLightningCLI(args=args, run=False)
    finally:
        sys.argv = argv
    built = time.perf_counter() - building
    timer = StepWindowTimer(warmup, steps)
    first = _FirstStep()
    cli.trainer.callbacks += [timer, first]
    started = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert timer.seconds is not None and first.at is not None
    return int(timer.samples) / timer.seconds, built, first.at - started


class _FirstStep(L.Callback):
    def __init__(self) -> None:
        self.at: float | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        self.at = self.at or time.perf_counter()


def _fingerprint_seconds(**init_args: Any) -> float | None:
    from zoo.data import CIFAR10DataModule

    try:
        data = CIFAR10DataModule(**init_args)
        data.prepare_data()
        data.setup("fit")
    except FileNotFoundError:
        return None
    started = time.perf_counter()
    data.fingerprint()
    return time.perf_counter() - started


def main() -> None:
    """Measure, print and append one record."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="one round of a few small steps (for CI)")
    args = parser.parse_args()
    extra = []
    if args.smoke:
        args.rounds, args.steps, args.warmup = 1, 3, 1
        extra = ["--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0"]
    rates: dict[str, list[float]] = {}
    first_step: dict[str, list[float]] = {}
    build: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for log_every in (50, 1):
            for index in range(args.rounds):
                for tracked in (False, True) if index % 2 == 0 else (True, False):
                    side = f"{'mlflow' if tracked else 'none'}@{log_every}"
                    folder = Path(tmp) / f"{side}-{index}"
                    L.seed_everything(0, verbose=False)
                    rate, built, to_first = _timed_fit(folder, tracked, log_every, args.warmup, args.steps, extra)
                    rates.setdefault(side, []).append(round(rate, 1))
                    build.setdefault(side, []).append(round(built, 3))
                    first_step.setdefault(side, []).append(round(to_first, 3))
                    print(f"# log every {log_every:>2}  {side:<10} round {index + 1}: {rate:8.1f} samples/s, "
                          f"first step after {to_first:.2f} s", flush=True)  # fmt: skip
    medians = {side: statistics.median(values) for side, values in rates.items()}
    environment_ms = []
    for _ in range(5):
        started = time.perf_counter()
        run_environment()
        environment_ms.append(1000 * (time.perf_counter() - started))
    imports: dict[str, list[float]] = {"lightning": [], "lightning+mlflow": []}
    for _ in range(0 if args.smoke else 3):  # fresh-process imports cost CI ten seconds and say nothing at toy sizes
        for side, code in (
            ("lightning", "import lightning.pytorch"),
            ("lightning+mlflow", "import lightning.pytorch, mlflow"),
        ):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            imports[side].append(time.perf_counter() - started)
    import_medians = {side: statistics.median(values) for side, values in imports.items() if values}
    record = {
        "benchmark": "tracking_overhead",
        "recipe": str(RECIPE.relative_to(REPO)),
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "rounds": args.rounds,
        "samples_per_second": medians,
        "tracked_over_untracked": {
            every: round(medians[f"mlflow@{every}"] / medians[f"none@{every}"], 3) for every in (50, 1)
        },
        "seconds_to_build": {side: statistics.median(values) for side, values in build.items()},
        "seconds_to_first_step": {side: statistics.median(values) for side, values in first_step.items()},
        "per_round": rates,
        "environment_record_ms": round(statistics.median(environment_ms), 1),
        "import_seconds_fresh_process": {side: round(value, 2) for side, value in import_medians.items()} or None,
        "mlflow_import_seconds": (
            round(import_medians["lightning+mlflow"] - import_medians["lightning"], 2) if import_medians else None
        ),
        "fingerprint_seconds": {
            "cifar10-mini (12,000 images)": _round(_fingerprint_seconds(variant="mini")),
            "cifar10 (60,000 images)": None if args.smoke else _round(_fingerprint_seconds()),
        },
        **measured_here("tracking_overhead.py"),
    }
    write_record(record, args.out)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


if __name__ == "__main__":
    main()
