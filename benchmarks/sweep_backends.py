"""What a sweep trial costs beyond its training, on Optuna (embedded) and on Ray Tune, measured side by side.

    python benchmarks/sweep_backends.py --out benchmarks/results/sweep_backends_cpu.jsonl [--trials 8] [--epochs 20]

Both backends run the same sweep (``recipes/cora/gcn.sweep.yaml``, trials of ``--epochs`` epochs, a few seconds
each) as ``zoo tune`` processes, one trial at a time (Optuna: ``--parallel 1``; Ray: each trial reserves every
CPU of the local instance) and without early stopping (``--pruner none``, ``--scheduler fifo``), so the trials
do the same work. The overhead is the process's wall time minus the time the trials report for their own runs
(``seconds`` in ``summary.json``: from building the run to the end of its fit), per trial; it includes starting
the process and, for Ray, the local instance and its worker processes. The backends alternate which runs first
from round to round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_accuracy import measured_here, write_record

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "recipes/cora/gcn.sweep.yaml"


def _run(backend: str, trials: int, epochs: int, folder: Path) -> dict[str, float]:
    """Wall seconds of one ``zoo tune`` process and the seconds its trials report for themselves."""
    cpus = str(os.cpu_count() or 1)
    command = [
        sys.executable, "-m", "zoo", "tune", "--sweep", str(SWEEP), "--trials", str(trials), "--name", backend,
        "--root", str(folder), "--pruner", "none",
        *(["--backend", "ray", "--scheduler", "fifo", "--cpus_per_trial", cpus, "--num_cpus", cpus]
          if backend == "ray" else []),
        "--", "--trainer.max_epochs", str(epochs),
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
    wall = time.perf_counter() - started
    summary = json.loads((folder / backend / "summary.json").read_text())
    own = [t["seconds"] for t in summary["trials"] if t["seconds"] is not None]
    return {"wall": wall, "trial_seconds": sum(own), "trials": len(own)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    per_trial: dict[str, list[float]] = {"optuna": [], "ray": []}
    trial_seconds: dict[str, list[float]] = {"optuna": [], "ray": []}
    walls: dict[str, list[float]] = {"optuna": [], "ray": []}
    for round_ in range(args.rounds):
        order = ["optuna", "ray"] if round_ % 2 == 0 else ["ray", "optuna"]
        for backend in order:
            with tempfile.TemporaryDirectory() as folder:
                measured = _run(backend, args.trials, args.epochs, Path(folder))
            per_trial[backend].append((measured["wall"] - measured["trial_seconds"]) / measured["trials"])
            trial_seconds[backend].append(measured["trial_seconds"] / measured["trials"])
            walls[backend].append(measured["wall"])
            print(f"round {round_} {backend}: {measured}", flush=True)
    record = {
        "benchmark": "sweep_backends",
        "sweep": str(SWEEP.relative_to(REPO)),
        "trials": args.trials,
        "epochs": args.epochs,
        "rounds": args.rounds,
        **{
            f"{backend}_{name}": round(statistics.median(values[backend]), 2)
            for backend in ("optuna", "ray")
            for name, values in (("wall_s", walls), ("trial_s", trial_seconds), ("overhead_per_trial_s", per_trial))
        },
        **measured_here("sweep_backends.py"),
    }
    record["ray_extra_per_trial_s"] = round(
        record["ray_overhead_per_trial_s"] - record["optuna_overhead_per_trial_s"], 2
    )
    write_record(record, args.out)


if __name__ == "__main__":
    main()
