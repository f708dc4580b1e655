"""``zoo tune``: run a sweep file's trials with Optuna or on Ray Tune, or show a sweep's results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.arguments import split_passed_on
from zoo.sweeps.space import read_sweep

if TYPE_CHECKING:
    from zoo.sweeps.study import SweepResult

__all__ = ["run_tune_command"]


def run_tune_command(argv: list[str]) -> None:
    """``zoo tune --sweep S --trials N [--name NAME] [...] [-- zoo fit overrides]`` or ``zoo tune --show NAME``."""
    argv, overrides = split_passed_on(argv)
    parser = argparse.ArgumentParser(
        prog="zoo tune",
        description="Search a recipe's hyperparameters with Optuna (TPE, seeded; SQLite study in "
        "runs/sweeps/<name>/; running again continues it). Arguments after -- go to every trial's `zoo fit`.",
    )
    parser.add_argument("--sweep", type=Path, help="the sweep file (recipe, metric, space)")
    parser.add_argument("--trials", type=int, default=20, help="trials to run now (added to the study's)")
    parser.add_argument("--name", help="the sweep's name (default: the sweep file's name without .sweep.yaml)")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    parser.add_argument("--pruner", default="median", choices=("median", "halving", "none"))
    parser.add_argument("--sampler", default="tpe", choices=("tpe", "random"), help="Optuna's sampler")
    parser.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    parser.add_argument("--root", type=Path, default=Path("runs/sweeps"), help="where sweeps live")
    parser.add_argument("--show", metavar="NAME", help="print the results of the sweep NAME and exit")
    parser.add_argument(
        "--parallel", type=int, default=1,
        help="run trials in N processes at once, each on its share of the cores (or one GPU each)",
    )  # fmt: skip
    ray = parser.add_argument_group("Ray Tune (--backend ray; pip install 'lightning-zoo[ray]')")
    ray.add_argument(
        "--backend", default="optuna", choices=("optuna", "ray"), help="run the trials with (default: optuna)"
    )
    ray.add_argument(
        "--address", default=None, help="join a Ray cluster (auto, ray://host:10001); default: start a local one"
    )
    ray.add_argument(
        "--scheduler",
        default="asha",
        choices=("asha", "pbt", "fifo"),
        help="ASHA, population-based training, or none (fifo)",
    )
    ray.add_argument("--cpus_per_trial", type=float, default=1.0, help="CPUs each trial reserves (fractions allowed)")
    ray.add_argument("--gpus_per_trial", type=float, default=0.0, help="GPUs each trial reserves (fractions allowed)")
    ray.add_argument(
        "--workers_per_trial", type=int, default=1,
        help="train each trial data-parallel on N Ray Train workers (DDP), sharing its CPUs/GPUs",
    )  # fmt: skip
    ray.add_argument("--num_cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    ray.add_argument("--perturbation_interval", type=int, default=None, help="PBT: epochs between perturbations")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # set by --parallel
    parser.add_argument("--target", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from zoo.sweeps.study import run_sweep, run_worker, show_sweep

    if args.show:
        print(show_sweep(args.show, args.root))
        return
    if args.sweep is None:
        parser.error("give the sweep file: zoo tune --sweep recipes/cora/gcn.sweep.yaml --trials 20")
    if args.trials < 1:
        parser.error(f"--trials must be at least 1, got {args.trials}")
    if args.parallel < 1:
        parser.error(f"--parallel must be at least 1, got {args.parallel}")
    spec = read_sweep(args.sweep)
    name = args.name or spec.path.name.removesuffix(".yaml").removesuffix(".sweep")
    if args.backend == "ray":
        if args.parallel > 1:
            parser.error("--parallel is for the optuna backend; Ray runs as many trials at once as resources allow")
        from zoo.sweeps.on_ray import RayOptions, run_ray_sweep

        options = RayOptions(
            args.address, args.scheduler, args.cpus_per_trial, args.gpus_per_trial, args.num_cpus,
            args.perturbation_interval, args.workers_per_trial,
        )  # fmt: skip
        result = run_ray_sweep(spec, args.trials, name, overrides, args.root, args.seed, options, args.timeout)
        _print_result(name, args.root, result)
        return
    if args.worker is not None:
        run_worker(spec, name, overrides, args.root, args.seed, args.pruner, args.timeout, args.worker,
                   args.parallel, args.target, args.sampler)  # fmt: skip
        return
    result = run_sweep(
        spec,
        args.trials,
        name,
        overrides,
        args.root,
        args.seed,
        args.pruner,
        args.timeout,
        args.parallel,
        args.sampler,
    )
    _print_result(name, args.root, result)


def _print_result(name: str, root: Path, result: SweepResult) -> None:
    from zoo.sweeps.study import show_sweep

    print(show_sweep(name, root))
    if result.best_config is not None:
        print(f"best config: {result.best_config}  (zoo fit --config {result.best_config})")
    print(json.dumps({"counts": result.counts, "best_value": result.best_value}))
