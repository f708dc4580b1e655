"""Run one recipe with several seeds and report its test metric as mean and standard deviation.

    python benchmarks/recipe_seeds.py recipes/cora/gcn.yaml --seeds 10 --out benchmarks/results/cora_cpu.jsonl
    python benchmarks/recipe_seeds.py recipes/cora/gcn.yaml --seeds 10 --out F --data.init_args.name PubMed

Each seed is a full ``zoo fit`` (training, then the test of the kept checkpoint) through the same
LightningCLI; every argument this script does not know (``--data.init_args.name PubMed``, ``--trainer.*``)
is passed to that ``zoo fit``. One JSON object per recipe is appended to ``--out``: the per-seed metric, its
mean and population standard deviation, the overrides, the mean wall time per run, and the hardware.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

from recipe_accuracy import hardware

from zoo.lightning_cli import ZooLightningCLI


def main() -> None:
    """Run the recipe once per seed and record the spread."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--metric", default="test/acc1")
    parser.add_argument("--out", type=Path, required=True)
    args, overrides = parser.parse_known_args()
    sys.argv = sys.argv[:1]
    warnings.filterwarnings("ignore")
    values, times = [], []
    for seed in range(args.seeds):
        started = time.perf_counter()
        cli = ZooLightningCLI(
            args=[
                "fit", "--config", args.recipe, "--seed_everything", str(seed),
                "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", *overrides,
            ]
        )  # fmt: skip
        times.append(time.perf_counter() - started)
        values.append(float(cli.trainer.callback_metrics[args.metric]))
        print(f"seed {seed}: {args.metric} {values[-1]:.4f} in {times[-1]:.1f} s", flush=True)
    record = {
        "recipe": args.recipe,
        "metric": args.metric,
        "values": [round(v, 4) for v in values],
        "mean": round(statistics.mean(values), 4),
        "std": round(statistics.pstdev(values), 4),
        "overrides": overrides,
        "seconds_per_run": round(statistics.mean(times), 1),
        "command": shlex.join(
            ["python", "benchmarks/recipe_seeds.py", args.recipe, "--seeds", str(args.seeds), *overrides]
        ),
        "hardware": hardware(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    print(json.dumps(record))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
