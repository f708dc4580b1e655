"""Run a sweep with Optuna on this machine: a seeded TPE sampler, an SQLite study, pruning, retries.

``runs/sweeps/<name>/`` holds everything: ``study.db`` (the Optuna study: running the same command again
continues it), ``trials/<recipe>/trial_NNNN/`` (each trial a normal zoo run folder: config, env.json,
data.json, checkpoints, TensorBoard), and at the end ``best.yaml`` (the best trial's resolved config, ready for
``zoo fit --config``), ``summary.json`` and the plots.

A trial killed with its process (SIGKILL, a lost node) stops sending Optuna's heartbeat; the next invocation
marks it failed and Optuna's ``RetryHeartbeatStaleTrialCallback`` queues it again with the same parameters. A trial
that raises, or whose loss goes non-finite, is recorded as failed with its reason and the sweep goes on; one
that the pruner stops early is recorded as pruned.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import ConfigError, MissingExtraError, UsageError, find_user_error
from zoo.run_folders import RUNS_DIR
from zoo.sweeps.space import SweepSpec

__all__ = ["SweepResult", "check_space", "run_sweep", "run_worker", "show_sweep", "sweep_folder", "write_results"]

_HEARTBEAT_S = 2
_GRACE_S = 6
_MAX_RETRY = 2


@dataclass
class SweepResult:
    """What a sweep left: where, how many trials in each state, and the best one."""

    folder: Path
    counts: dict[str, int]
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Path | None


def sweep_folder(name: str, root: str | Path = "runs/sweeps") -> Path:
    """``<root>/<name>``, the folder of one sweep."""
    return Path(root) / name


def _require_optuna() -> Any:
    try:
        return import_module("optuna")
    except ImportError as err:
        raise MissingExtraError("zoo tune needs Optuna: pip install 'lightning-zoo[tune]'") from err


def _fit_cli(args: list[str]) -> Any:
    import warnings

    from zoo.lightning_cli import ZooLightningCLI

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")  # `zoo tune`'s own argv
        return ZooLightningCLI(args=args, run=False)


def as_override(value: Any) -> str:
    """A value as ``zoo fit`` reads it from the command line (YAML): ``0.01``, ``true``, ``[16, 32]``."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


@dataclass(frozen=True)
class SweepCheck:
    """What :func:`check_space` learned from the recipe.

    Attributes:
        metric: The metric trials are ranked by.
        direction: ``"maximize"`` or ``"minimize"``.
        max_epochs: The trials' epoch budget (-1 when steps bound them).
        config: The recipe's resolved config (with the sweep's overrides), as plain data.
    """

    metric: str
    direction: str
    max_epochs: int
    config: dict[str, Any]


def check_space(spec: SweepSpec, overrides: list[str]) -> SweepCheck:
    """Check, before any trial, that the recipe accepts every key and a trial's config builds; find the metric.

    Returns:
        The metric and direction (the spec's, or the task's default monitor and its direction), the trials'
        epoch budget (the pruner waits a tenth of it before it judges a trial), and the resolved config.

    Raises:
        ConfigError: Naming a key the recipe does not accept and the closest keys it does, a trial
            configuration that does not build, or a metric whose direction cannot be told.
    """
    from zoo.tracking.record import flatten_config

    base = _fit_cli(["--config", str(spec.recipe), *overrides, "--trainer.logger", "false"])
    config = base.config.as_dict()
    flat = flatten_config(config)
    for param in spec.params:
        if param.key in flat or _free_form(config, param.key):
            continue
        close = difflib.get_close_matches(param.key, list(flat), n=3, cutoff=0.6)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ConfigError(f"{spec.path}: the recipe {spec.recipe} has no key {param.key}{hint}")
    first = {param.key: _first_value(param) for param in spec.params}
    try:
        _fit_cli(["--config", str(spec.recipe), *_overrides(first), *overrides, "--trainer.logger", "false"])
    except (SystemExit, Exception) as err:  # the parser exits; instantiation raises, wrapped by jsonargparse
        reason = find_user_error(err) if isinstance(err, Exception) else None
        raise ConfigError(
            f"{spec.path}: a trial's configuration does not build ({reason or err}); the values tried: {first}"
        ) from None
    task = type(base.model)
    monitor = getattr(task, "default_monitor", None)
    metric = spec.metric or (monitor[0] if monitor else None)
    if metric is None:
        raise ConfigError(f"{spec.path}: {task.__name__} has no default metric; set metric: in the sweep file")
    direction = spec.direction
    if direction is None:
        if monitor and metric == monitor[0]:
            direction = "maximize" if monitor[1] == "max" else "minimize"
        elif "loss" in metric:
            direction = "minimize"
        else:
            raise ConfigError(f"{spec.path}: say whether {metric} is to be maximized or minimized (direction: ...)")
    max_epochs = base.trainer.max_epochs
    return SweepCheck(metric, direction, int(max_epochs if max_epochs is not None else -1), config)


def _free_form(config: dict[str, Any], key: str) -> bool:
    """Whether ``key`` goes into a free-form mapping (``backbone_kwargs``), whose keys the parser cannot list.

    The sections (``trainer``, ``checkpoint``) and every class's ``init_args`` list all their keys, so a key
    missing there is unknown; a mapping below them (or one left unset) takes any key, and the trial build that
    follows checks it.
    """
    parts = key.split(".")
    node: Any = config
    for index, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        inside_a_mapping = node is None or (isinstance(node, dict) and "class_path" not in node)
        return index >= 2 and parts[index - 1] != "init_args" and inside_a_mapping
    return True


def _first_value(param: Any) -> Any:
    if param.kind in ("fixed", "choice"):
        return param.values[0]
    low, high = param.values
    return int(low) if param.kind == "int" else (math.sqrt(low * high) if param.kind == "loguniform" else low)


def _overrides(values: dict[str, Any]) -> list[str]:
    return [arg for key, value in values.items() for arg in (f"--{key}", as_override(value))]


def run_sweep(
    spec: SweepSpec,
    trials: int,
    name: str,
    overrides: list[str] | None = None,
    root: str | Path = "runs/sweeps",
    seed: int = 0,
    pruner: str = "median",
    timeout: float | None = None,
    parallel: int = 1,
    sampler: str = "tpe",
) -> SweepResult:
    """Run ``trials`` more trials of the sweep (continuing its study when it exists) and write the results.

    With ``parallel`` above 1 the trials run in that many worker processes on this machine (see
    :func:`run_worker`), sharing the study; this process only starts them, waits and writes the results.
    """
    overrides = list(overrides or [])
    check = check_space(spec, overrides)
    metric, direction = check.metric, check.direction
    folder = sweep_folder(name, root)
    folder.mkdir(parents=True, exist_ok=True)
    warmup = max(1, check.max_epochs // 10)
    directions: str | list[str] = [direction, *("minimize" for _ in spec.objectives)] if spec.objectives else direction
    study = _study(name, folder, seed, pruner, directions, sampler, warmup)
    _check_same_sweep(study, spec, metric, direction)
    study.set_user_attr("pruner_warmup_epochs", warmup)
    parent = _ParentRun.open(study, check, folder, name) if check.config.get("tracking") == "mlflow" else None
    if parent is not None:
        overrides = [*overrides, "--tracking_parent_run", parent.run_id]
    if parallel > 1:
        target = len(study.get_trials(deepcopy=False)) + trials
        _run_workers(spec, name, overrides, Path(root), seed, pruner, timeout, parallel, target, sampler)
        study = _study(name, folder, seed, pruner, directions, sampler, warmup)
    else:
        objective = _Objective(spec, metric, folder, overrides)
        study.optimize(objective, n_trials=trials, timeout=timeout, catch=(Exception,), gc_after_trial=True)
    result = write_results(study, folder)
    if parent is not None:
        parent.close(result, metric)
    return result


class _ParentRun:
    """The MLflow run a tracked sweep's trials are nested under: its settings, then its best result and files."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    @classmethod
    def open(cls, study: Any, check: SweepCheck, folder: Path, name: str) -> _ParentRun:
        """The sweep's parent run in the store and experiment its trials log to (created once per study)."""
        from mlflow import MlflowClient

        from zoo.run_folders import run_name
        from zoo.tracking import plan_tracking

        config = check.config
        plan = plan_tracking("mlflow", config.get("tracking_uri"), folder / "trials")
        assert plan is not None
        experiment_name = config.get("tracking_experiment") or run_name(config)
        client = MlflowClient(plan.uri)
        experiment = client.get_experiment_by_name(experiment_name)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(experiment_name, artifact_location=plan.artifact_location)
        )
        run_id = study.user_attrs.get("mlflow_parent_run")
        if run_id is None:
            run = client.create_run(experiment_id, run_name=f"sweep {name}", tags={"zoo.sweep_folder": str(folder)})
            run_id = run.info.run_id
            study.set_user_attr("mlflow_parent_run", run_id)
            client.log_text(run_id, json.dumps(study.user_attrs, indent=2, default=str), "sweep.json")
        else:
            client.update_run(run_id, status="RUNNING")
        return cls(client, run_id)

    def close(self, result: SweepResult, metric: str) -> None:
        """Log the best value, its parameters and the sweep's files, and mark the run finished."""
        if result.best_value is not None:
            self.client.log_metric(self.run_id, f"best/{metric}", result.best_value)
            for key, value in result.best_params.items():
                self.client.set_tag(self.run_id, f"best.{key}", str(value))
        for file in ("best.yaml", "summary.json", "history.png", "importances.png", "parallel.png", "pareto.png"):
            if (result.folder / file).is_file():
                self.client.log_artifact(self.run_id, str(result.folder / file))
        self.client.set_terminated(self.run_id, "FINISHED")


def run_worker(
    spec: SweepSpec, name: str, overrides: list[str], root: str | Path, seed: int, pruner: str,
    timeout: float | None, worker: int, parallel: int, target: int, sampler: str = "tpe",
) -> None:  # fmt: skip
    """Run trials as one of ``parallel`` processes of a sweep until the study holds ``target`` trials.

    The process is pinned to its share of the cores (or one GPU); its sampler's seed is ``seed + worker``, so
    workers do not draw the same values.
    """
    _pin(worker, parallel)
    folder = sweep_folder(name, root)
    warmup = _study(name, folder, seed, "none", None).user_attrs.get("pruner_warmup_epochs", 1)
    study = _study(name, folder, seed + worker, pruner, None, sampler, warmup)
    from optuna.study import MaxTrialsCallback

    objective = _Objective(spec, study.user_attrs["metric"], folder, overrides)
    study.optimize(
        objective, n_trials=target, timeout=timeout, catch=(Exception,), gc_after_trial=True,
        callbacks=[MaxTrialsCallback(target, states=None)],
    )  # fmt: skip


def _pin(worker: int, parallel: int) -> None:
    """Keep this process to every ``parallel``-th core starting at ``worker``, and torch's threads to as many."""
    if not hasattr(os, "sched_setaffinity"):
        return
    import torch

    cores = sorted(os.sched_getaffinity(0))
    share = set(cores[worker::parallel]) or set(cores)
    os.sched_setaffinity(0, share)
    torch.set_num_threads(len(share))


def _run_workers(
    spec: SweepSpec, name: str, overrides: list[str], root: Path, seed: int, pruner: str,
    timeout: float | None, parallel: int, target: int, sampler: str,
) -> None:  # fmt: skip
    """Start the worker processes (one GPU each when there are enough), wait for them, stop them on Ctrl+C."""
    import subprocess
    import sys

    import torch

    gpus = torch.cuda.device_count()
    processes = []
    for worker in range(parallel):
        command = [
            sys.executable, "-m", "zoo", "tune", "--sweep", str(spec.path), "--name", name, "--root", str(root),
            "--seed", str(seed), "--pruner", pruner, "--worker", str(worker), "--parallel", str(parallel),
            "--target", str(target), "--sampler", sampler, *(["--timeout", str(timeout)] if timeout else []),
            "--", *overrides,
        ]  # fmt: skip
        env = dict(os.environ)
        if gpus >= parallel:
            env["CUDA_VISIBLE_DEVICES"] = str(worker)
        processes.append(subprocess.Popen(command, env=env))
    try:
        codes = [process.wait() for process in processes]
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        raise
    failed = [f"worker {i} exited with status {code}" for i, code in enumerate(codes) if code != 0]
    if failed:
        raise UsageError(f"sweep {name}: {'; '.join(failed)} (its error is printed above)")


def _study(
    name: str,
    folder: Path,
    seed: int,
    pruner: str,
    direction: str | list[str] | None,
    sampler: str = "tpe",
    warmup: int = 1,
) -> Any:
    """The sweep's study in ``folder/study.db``, created when missing, with heartbeats that retry killed trials.

    Several directions make a multi-objective study: NSGA-II instead of TPE, and no pruning (Optuna prunes
    single-objective trials only).
    """
    optuna = _require_optuna()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    storage = RDBStorage(
        f"sqlite:///{(folder / 'study.db').resolve()}",
        heartbeat_interval=_HEARTBEAT_S,
        grace_period=_GRACE_S,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=_MAX_RETRY),
    )
    if isinstance(direction, list):
        chosen = optuna.samplers.NSGAIISampler(seed=seed) if sampler == "tpe" else _sampler(optuna, sampler, seed)
        return optuna.create_study(
            study_name=name, storage=storage, sampler=chosen, pruner=optuna.pruners.NopPruner(),
            directions=direction, load_if_exists=True,
        )  # fmt: skip
    return optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=_sampler(optuna, sampler, seed),
        pruner=_pruner(optuna, pruner, warmup),
        direction=direction,
        load_if_exists=True,
    )


def _check_same_sweep(study: Any, spec: SweepSpec, metric: str, direction: str) -> None:
    recorded = study.user_attrs
    metrics = [metric, *spec.objectives] if spec.objectives else metric
    mine = {"recipe": str(spec.recipe), "metric": metrics, "space": sorted(p.key for p in spec.params)}
    if not recorded:
        for key, value in mine.items():
            study.set_user_attr(key, value)
        return
    different = [key for key, value in mine.items() if recorded.get(key) != value]
    if different:
        raise UsageError(
            f"the sweep {study.study_name} in {study._storage} was started with another {', '.join(different)}; "
            "give this one another --name"
        )


def _sampler(optuna: Any, name: str, seed: int) -> Any:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"--sampler {name!r}: choose tpe or random")


def _pruner(optuna: Any, name: str, warmup: int) -> Any:
    """Optuna's median (after 5 complete trials, from epoch ``warmup`` on) or successive-halving pruner.

    Early epochs say little about where a run ends (on Cora, the accuracy after one epoch of 200 ranks trials
    almost at random), so a trial is judged only after a tenth of its epochs.
    """
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner {name!r}: choose median, halving or none")


class _Objective:
    """One trial: the sampled overrides, a zoo run with the pruning callback, the metric of its best epoch."""

    def __init__(self, spec: SweepSpec, metric: str, folder: Path, overrides: list[str]) -> None:
        self.spec, self.metric, self.folder, self.overrides = spec, metric, folder, overrides

    def __call__(self, trial: Any) -> float | tuple[float, ...]:
        from optuna_integration import PyTorchLightningPruningCallback

        values = self.spec.sample(trial)
        trial.set_user_attr("overrides", _overrides(values))
        started = time.perf_counter()
        try:
            cli = _fit_cli(trial_args(self.spec, values, self.overrides, self.folder, trial.number))
            trial.set_user_attr("run_folder", str(cli.trainer.log_dir))
            if not self.spec.objectives:  # Optuna prunes single-objective trials only
                cli.trainer.callbacks.append(PyTorchLightningPruningCallback(trial, monitor=self.metric))
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        except Exception as err:
            if type(err).__name__ != "TrialPruned":
                trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:2000])
            raise
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
        score = kept_score(cli.trainer, self.metric)
        if not math.isfinite(score):
            trial.set_user_attr("error", f"{self.metric} is {score}")
        if not self.spec.objectives:
            return score
        return (score, *(objective_value(name, cli.model) for name in self.spec.objectives))


def trial_args(spec: SweepSpec, values: dict[str, Any], overrides: list[str], folder: Path, number: int) -> list[str]:
    """``zoo fit``'s arguments for trial ``number``: the recipe, the drawn values, the sweep's overrides, its folder.

    Every backend places trial ``number`` in ``<folder>/trials/<recipe>/trial_NNNN`` and leaves the test split
    alone (trials are selected on validation only).
    """
    return [
        "--config", str(spec.recipe), *_overrides(values), *overrides,
        "--trainer.default_root_dir", str(folder / "trials"),
        "--trainer.logger.init_args.version", f"trial_{number:04d}",
        "--test_after_fit", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ]  # fmt: skip


def trainable_parameters(module: Any) -> int:
    """How many parameters ``module`` trains (the ``params`` objective)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def objective_value(name: str, module: Any) -> float:
    """A trial's value for one of the objectives minimised beside the metric (:data:`~zoo.sweeps.space.OBJECTIVES`).

    ``params``: trainable parameters. ``latency_ms``: the median of 20 timed forward passes (after 5 warm-up
    passes) of the trained model's inference module in eval mode on its device, at batch size 1 with the task's
    example inputs (its inference signature's sizes, e.g. one 32x32 image); measured in the trial's process, so
    trials that run side by side share the machine, and their latencies are comparable only when run alike.
    """
    if name == "params":
        return float(trainable_parameters(module))
    if name == "latency_ms":
        return inference_latency_ms(module)
    raise ValueError(f"unknown objective {name!r}")


def inference_latency_ms(module: Any, warmup: int = 5, timed: int = 20) -> float:
    """Median milliseconds of a batch-1 forward pass of ``module``'s inference network (see :func:`objective_value`)."""
    import statistics

    import torch

    sizes = {**module.inference_signature().example_sizes, "batch": 1}
    network = module.inference_module()
    device = next(module.parameters()).device
    inputs = tuple(t.to(device) for t in module.example_inputs(sizes, torch.Generator().manual_seed(0)))
    was_training = network.training
    network.eval()
    times = []
    try:
        with torch.inference_mode():
            for index in range(warmup + timed):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
                network(*inputs)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if index >= warmup:
                    times.append((time.perf_counter() - started) * 1000)
    finally:
        network.train(was_training)
    return statistics.median(times)


def kept_score(trainer: Any, metric: str) -> float:
    """The metric at the epoch the run keeps (its best checkpoint), else its latest value.

    Raises:
        UsageError: When the run does not log ``metric``, naming the metrics it does log.
    """
    saver = trainer.checkpoint_callback
    kept = _checkpoint_metrics(getattr(saver, "best_model_path", ""))
    if metric in kept:
        return float(kept[metric])
    if metric in trainer.callback_metrics:
        return float(trainer.callback_metrics[metric])
    logged = sorted(trainer.callback_metrics)
    raise UsageError(f"the trials do not log {metric}; they log {', '.join(logged) or 'nothing'}")


def _checkpoint_metrics(path: str) -> dict[str, float]:
    """The metrics a zoo checkpoint recorded when it was saved (``{}`` without one)."""
    if not path or not Path(path).is_file():
        return {}
    from zoo.checkpoints import METADATA_KEY, load_safely

    return dict((load_safely(path, mmap=True).get(METADATA_KEY) or {}).get("metrics") or {})


def write_results(study: Any, folder: Path) -> SweepResult:
    """``best.yaml``, ``summary.json`` and the plots of a study, from what its database holds."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    multi = len(study.directions) > 1
    complete = [
        t for t in trials if t.state == TrialState.COMPLETE and t.values and all(math.isfinite(v) for v in t.values)
    ]
    best = study.best_trial if complete and not multi else None
    best_config = _write_best_config(best, folder) if best is not None else None
    directions = [d.name.lower() for d in study.directions]
    summary = {
        "study": study.study_name,
        "direction": directions if multi else directions[0],
        "metric": study.user_attrs.get("metric"),
        "recipe": study.user_attrs.get("recipe"),
        "counts": {k: v for k, v in counts.items() if v},
        "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                            "run_folder": best.user_attrs.get("run_folder")},
        "pareto": [_trial_row(t) for t in study.best_trials] if multi and complete else None,
        "trials": [_trial_row(t) for t in trials],
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if len(complete) >= 2:
        _pareto_plot(study, folder) if multi else _plots(study, folder)
    return SweepResult(
        folder,
        summary["counts"],
        None if best is None else best.number,
        None if best is None else best.value,
        {} if best is None else dict(best.params),
        best_config,
    )


def show_sweep(name: str, root: str | Path = "runs/sweeps", top: int = 10) -> str:
    """The sweep's best trials as a table, with the counts per state (from ``summary.json`` or the study)."""
    folder = sweep_folder(name, root)
    if not (folder / "study.db").is_file():
        raise UsageError(f"no sweep {name} under {Path(root)} (no {folder / 'study.db'})")
    optuna = _require_optuna()
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{(folder / 'study.db').resolve()}")
    write_results(study, folder)
    summary = json.loads((folder / "summary.json").read_text())
    if isinstance(summary["direction"], list):
        return _show_pareto(name, summary)
    reverse = summary["direction"] == "maximize"
    done = [t for t in summary["trials"] if t["state"] == "complete" and t["value"] is not None]
    done.sort(key=lambda t: t["value"], reverse=reverse)
    keys = sorted({key for t in done[:top] for key in t["params"]})
    short = [key.rsplit(".", 1)[-1] for key in keys]
    lines = [f"sweep {name}: {summary['recipe']}, {summary['direction']} {summary['metric']}; "
             + ", ".join(f"{count} {state}" for state, count in summary["counts"].items())]  # fmt: skip
    header = ["trial", summary["metric"] or "value", *short, "seconds"]
    rows = [[str(t["number"]), f"{t['value']:.4f}", *(_cell(t["params"].get(k)) for k in keys), str(t["seconds"])]
            for t in done[:top]]  # fmt: skip
    lines += _table(header, rows)
    failed = [t for t in summary["trials"] if t["state"] == "fail" and t["error"]]
    lines += [f"  trial {t['number']} failed: {t['error'][:200]}" for t in failed[-3:]]
    return "\n".join(lines)


def _show_pareto(name: str, summary: dict[str, Any]) -> str:
    """A multi-objective sweep's Pareto front: the trials no other trial beats on every objective."""
    metrics = summary["metric"]
    front = sorted(summary["pareto"] or [], key=lambda t: t["values"][0], reverse=summary["direction"][0] == "maximize")
    keys = sorted({key for t in front for key in t["params"]})
    header = ["trial", *metrics, *(key.rsplit(".", 1)[-1] for key in keys)]
    rows = [[str(t["number"]), *(_cell(v) for v in t["values"]), *(_cell(t["params"].get(k)) for k in keys)]
            for t in front]  # fmt: skip
    counts = ", ".join(f"{count} {state}" for state, count in summary["counts"].items())
    directions = "/".join(summary["direction"])
    lines = [f"sweep {name}: {summary['recipe']}, Pareto front of {', '.join(metrics)} ({directions}); {counts}"]
    lines += _table(header, rows)
    return "\n".join(lines)


def _pareto_plot(study: Any, folder: Path) -> None:
    """The Pareto front as a PNG (Optuna's matplotlib plot), objectives named after the sweep's metrics."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        axes = plots.plot_pareto_front(study, target_names=list(study.user_attrs.get("metric") or []) or None)
    axes.figure.savefig(folder / "pareto.png", dpi=110, bbox_inches="tight")
    plt.close(axes.figure)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart, indented by two."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    return [
        "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in (header, *rows)
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _trial_row(trial: Any) -> dict[str, Any]:
    import warnings

    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks it experimental
        retried_from = RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
    values = trial.values
    return {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "value": values[0] if values and len(values) == 1 else None,
        "values": values,
        "params": trial.params,
        "seconds": trial.user_attrs.get("seconds"),
        "epochs_validated": len(trial.intermediate_values),
        "error": trial.user_attrs.get("error"),
        "run_folder": trial.user_attrs.get("run_folder"),
        **({"run_folders": trial.user_attrs["run_folders"]} if "run_folders" in trial.user_attrs else {}),
        "retried_from": retried_from if retried_from is not None else trial.user_attrs.get("retried_from"),
    }


def _write_best_config(best: Any, folder: Path) -> Path | None:
    """The best trial's resolved config, without what placed it in the sweep's folder."""
    run = best.user_attrs.get("run_folder")
    source = Path(run) / "config.yaml" if run else None
    if source is None or not source.is_file():
        return None
    config = yaml.safe_load(source.read_text())
    trainer = config.get("trainer") or {}
    trainer["default_root_dir"] = None
    logger = trainer.get("logger")
    if isinstance(logger, dict) and isinstance(logger.get("init_args"), dict):  # runs/<recipe>/version_N again
        logger["init_args"].update({"save_dir": RUNS_DIR, "version": None})
    config["test_after_fit"] = True
    for key in ("trainer.enable_progress_bar", "trainer.enable_model_summary"):
        trainer.pop(key.split(".", 1)[1], None)
    target = folder / "best.yaml"
    header = (
        f"# The best trial ({best.number}, {best.value:.6g}) of the sweep in {folder}: its resolved config.\n"
        f"#   zoo fit --config {target}\n"
    )
    partial = target.with_name(target.name + ".partial")
    partial.write_text(header + yaml.safe_dump(config, sort_keys=False))
    os.replace(partial, target)
    return target


def _plots(study: Any, folder: Path) -> None:
    """Optimisation history, parameter importances and parallel coordinates, as PNGs (Optuna's matplotlib)."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    for name, draw in (
        ("history", plots.plot_optimization_history),
        ("importances", plots.plot_param_importances),
        ("parallel", plots.plot_parallel_coordinate),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = draw(study)
            except (ValueError, RuntimeError):  # e.g. importances of a single searched parameter
                continue
        figure = (axes[0] if hasattr(axes, "__len__") else axes).figure
        figure.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(figure)
