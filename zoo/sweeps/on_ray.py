"""Run a sweep on Ray Tune: a local Ray instance or an existing cluster, ASHA or population-based training.

The same sweep file, trial folders and results as the Optuna backend (:mod:`zoo.sweeps.study`): with ASHA,
Optuna's sampler proposes the trials through Ray's ``OptunaSearch``, which writes them into the sweep's own
``study.db``, so both backends search the same way, a second invocation continues the same study (whichever
backend ran it before), and ``best.yaml``, ``summary.json``, the plots and ``zoo tune --show`` come from one
place. Population-based training cannot take a search algorithm (Ray refuses one); its trials are drawn from
the space by Ray, seeded, and recorded into the study when the sweep ends.

Ray's own files (experiment state, each trial's results and PBT's checkpoints) go to
``<sweep>/ray/<experiment>``. On a cluster that folder, the sweep's folder and the data must be on storage
every node sees at the same path; :func:`check_shared_storage` checks it before any trial starts.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, replace
from importlib import import_module
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError, MissingExtraError, UsageError
from zoo.sweeps.ray_trial import TRIAL_KEY, RayJob, error_file, run_ray_trial
from zoo.sweeps.space import Param, SweepSpec

__all__ = ["RayOptions", "check_shared_storage", "ray_domain", "run_ray_sweep"]

SCHEDULERS = ("asha", "pbt", "fifo")


@dataclass(frozen=True)
class RayOptions:
    """How a sweep uses Ray.

    Attributes:
        address: ``None`` starts a local Ray instance; ``auto`` or ``ray://host:10001`` joins a cluster.
        scheduler: ``asha`` (asynchronous successive halving), ``pbt`` (population-based training) or ``fifo``
            (every trial runs to its end).
        cpus_per_trial: CPUs reserved for each trial (fractions allowed).
        gpus_per_trial: GPUs reserved for each trial (fractions allowed: several trials can share one GPU).
        num_cpus: CPUs of the local instance (``None``: all of this machine's); ignored with ``address``.
        perturbation_interval: PBT's interval, in epochs (``None``: a quarter of the trials' epochs).
        workers_per_trial: Above 1, each trial trains data-parallel on that many Ray Train workers (processes,
            one device each), sharing the trial's CPUs and GPUs equally.
    """

    address: str | None = None
    scheduler: str = "asha"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    num_cpus: int | None = None
    perturbation_interval: int | None = None
    workers_per_trial: int = 1


def _require_ray() -> Any:
    try:
        import_module("ray.tune")
    except ImportError as err:
        raise MissingExtraError("zoo tune --backend ray needs Ray Tune: pip install 'lightning-zoo[ray]'") from err
    return import_module("ray")


def check_options(options: RayOptions, spec: SweepSpec) -> None:
    """Refuse settings Ray would accept and then hang or fail on, before Ray starts.

    Raises:
        ConfigError: An unknown scheduler, a non-positive resource, PBT over conditional keys or with several
            objectives (it needs one score and a fixed set of keys to perturb).
    """
    if options.scheduler not in SCHEDULERS:
        raise ConfigError(f"--scheduler {options.scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
    if not options.cpus_per_trial > 0:
        raise ConfigError(f"--cpus_per_trial must be above 0, got {options.cpus_per_trial}")
    if options.gpus_per_trial < 0:
        raise ConfigError(f"--gpus_per_trial must be 0 or more, got {options.gpus_per_trial}")
    if options.workers_per_trial < 1:
        raise ConfigError(f"--workers_per_trial must be at least 1, got {options.workers_per_trial}")
    if options.workers_per_trial > 1 and options.scheduler == "pbt":
        raise ConfigError("--workers_per_trial above 1 runs each trial as a Ray Train run, which PBT cannot pause "
                          "and restore here; use --scheduler asha or fifo")  # fmt: skip
    if options.scheduler == "pbt":
        conditional = [p.key for p in spec.params if p.when]
        if conditional:
            raise ConfigError(
                f"{spec.path}: population-based training perturbs a fixed set of keys; it cannot search the "
                f"conditional key(s) {', '.join(conditional)} (use --scheduler asha)"
            )
        if spec.objectives:
            raise ConfigError(f"{spec.path}: population-based training needs one metric, not {spec.objectives}")


def run_ray_sweep(
    spec: SweepSpec,
    trials: int,
    name: str,
    overrides: list[str],
    root: str | Path,
    seed: int,
    options: RayOptions,
    timeout: float | None = None,
) -> Any:
    """Run ``trials`` more trials of the sweep on Ray Tune and write the results (see the module's text)."""
    from zoo.sweeps.study import _check_same_sweep, _ParentRun, _study, check_space, sweep_folder, write_results

    check_options(options, spec)
    ray = _require_ray()
    check = check_space(spec, overrides)
    folder = sweep_folder(name, root).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    warmup = max(1, check.max_epochs // 10)
    directions = [check.direction, *("minimize" for _ in spec.objectives)] if spec.objectives else check.direction
    study = _study(name, folder, seed, "none", directions, "tpe", warmup)
    _check_same_sweep(study, spec, check.metric, check.direction)
    _fail_interrupted(study)
    parent = _ParentRun.open(study, check, folder, name) if check.config.get("tracking") == "mlflow" else None
    if parent is not None:
        overrides = [*overrides, "--tracking_parent_run", parent.run_id]
    _start_ray(ray, options)
    try:
        check_shared_storage(ray, folder)
        _check_resources(ray, options)
        workers = options.workers_per_trial
        job = RayJob(
            spec, check.metric, spec.objectives, folder, tuple(overrides), os.getcwd(), options.scheduler == "pbt",
            workers, options.cpus_per_trial / workers, options.gpus_per_trial / workers,
        )  # fmt: skip
        if options.scheduler == "pbt":
            _run_pbt(study, job, check, trials, seed, options, timeout)
        else:
            _run_asha(study, job, check, trials, seed, options, timeout, warmup)
    finally:
        if options.address is None:
            ray.shutdown()
    result = write_results(study, folder)
    if parent is not None:
        parent.close(result, check.metric)
    return result


def _start_ray(ray: Any, options: RayOptions) -> None:
    """A local instance (this machine's CPUs, no dashboard) or the cluster at ``options.address``.

    Trials keep the driver's working directory (``RAY_CHDIR_TO_TRIAL_DIR=0``), so relative paths in a recipe
    mean what they mean to ``zoo fit``.
    """
    env = {"RAY_CHDIR_TO_TRIAL_DIR": "0"}
    os.environ.update(env)
    if ray.is_initialized():
        return
    if options.address is None:
        ray.init(num_cpus=options.num_cpus, include_dashboard=False, runtime_env={"env_vars": env})
    else:
        ray.init(address=options.address, runtime_env={"env_vars": env})


def check_shared_storage(ray: Any, folder: Path) -> None:
    """Check that every node of the cluster sees the sweep's folder: a task on each node writes a file there.

    Ray (since 2.7) no longer copies trial folders between nodes, and zoo's trials write their run folders next
    to the study, so a folder only the driver's node has would scatter the sweep. One node: nothing to check.

    Raises:
        UsageError: Naming the nodes whose file the driver cannot see.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if len(nodes) < 2:
        return
    marks = folder / ".nodes"
    marks.mkdir(exist_ok=True)

    @ray.remote(num_cpus=0)
    def touch(path: str) -> str:
        import socket

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(socket.gethostname())
        return socket.gethostname()

    pending = {
        node["NodeID"]: touch.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote(str(marks / node["NodeID"]))
        for node in nodes
    }
    hosts = dict(zip(pending, ray.get(list(pending.values())), strict=True))
    blind = [f"{hosts[node]} ({node[:8]})" for node in pending if not (marks / node).is_file()]
    if blind:
        raise UsageError(
            f"the sweep's folder {folder} is not shared storage: the node(s) {', '.join(blind)} wrote into their "
            "own copy; put --root (and the data) on a filesystem every node mounts at the same path"
        )


def _check_resources(ray: Any, options: RayOptions) -> None:
    """One trial must fit the cluster, else Ray waits for resources forever."""
    available = ray.cluster_resources()
    cpus, gpus = float(available.get("CPU", 0)), float(available.get("GPU", 0))
    if options.cpus_per_trial > cpus or options.gpus_per_trial > gpus:
        raise UsageError(
            f"one trial asks for {options.cpus_per_trial:g} CPU and {options.gpus_per_trial:g} GPU, but the Ray "
            f"cluster has {cpus:g} CPU and {gpus:g} GPU; lower --cpus_per_trial/--gpus_per_trial"
        )


def _fail_interrupted(study: Any) -> None:
    """Trials a killed Ray sweep left running: marked failed and queued again with the same values.

    Ray's trials send Optuna no heartbeat, so a trial still running in the study when a Ray sweep of it starts
    was interrupted with its driver (the Optuna backend's own stale trials are handled by its heartbeat).
    """
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("backend") != "ray":
            continue
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retried_from": trial.number}, skip_if_exists=False)


def _tune_config(tune: Any, job: RayJob, check: Any, **settings: Any) -> Any:
    mode = "max" if check.direction == "maximize" else "min"
    return tune.TuneConfig(metric=job.metric, mode=mode, **settings)


def _run_config(tune: Any, folder: Path) -> Any:
    """Ray's files in ``<sweep>/ray/<date-time>``; a trial that raises is failed, not retried (Optuna retries)."""
    return tune.RunConfig(
        storage_path=str(folder / "ray"),
        name=time.strftime("%Y%m%d-%H%M%S"),
        verbose=1,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=4),
        failure_config=tune.FailureConfig(max_failures=0),
    )


def _trainable(tune: Any, job: RayJob, options: RayOptions) -> Any:
    """The trial function with its resources: its own, or next to none (a byte) when it only drives Train workers."""
    resources = (
        {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial} if job.workers == 1 else {"cpu": 0, "memory": 1}
    )
    return tune.with_resources(tune.with_parameters(run_ray_trial, job=job), resources)


def _trials_at_once(ray: Any, options: RayOptions) -> int:
    """How many trials the cluster holds at once (their Train workers reserve the resources, not the trials)."""
    available = ray.cluster_resources()
    fits = [float(available.get("CPU", 0)) // options.cpus_per_trial]
    if options.gpus_per_trial > 0:
        fits.append(float(available.get("GPU", 0)) // options.gpus_per_trial)
    return max(1, int(min(fits)))


def _run_asha(
    study: Any, job: RayJob, check: Any, trials: int, seed: int, options: RayOptions, timeout: float | None,
    warmup: int,
) -> None:  # fmt: skip
    """ASHA over trials that Optuna's sampler proposes into the sweep's study (one objective), else FIFO."""
    from optuna.storages import RDBStorage
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    searcher = _study_searcher()(
        sweep_folder=job.folder,
        space=_DefineByRun(job.spec),
        metric=[job.metric, *job.objectives] if job.objectives else job.metric,
        mode=[("max" if d.name == "MAXIMIZE" else "min") for d in study.directions]
        if job.objectives
        else ("max" if check.direction == "maximize" else "min"),
        sampler=_sampler(study, seed),
        study_name=study.study_name,
        storage=RDBStorage(f"sqlite:///{job.folder / 'study.db'}"),
    )
    max_t = check.max_epochs if check.max_epochs > 0 else 10**6
    scheduler = (
        FIFOScheduler()
        if job.objectives or options.scheduler == "fifo"  # ASHA ranks by one metric
        else ASHAScheduler(time_attr="zoo_epoch", max_t=max_t, grace_period=min(warmup, max_t), reduction_factor=3)
    )
    # Reusing a trial's worker process for the next trial saves starting Python and importing zoo each time.
    settings: dict[str, Any] = {
        "search_alg": searcher, "scheduler": scheduler, "num_samples": trials, "reuse_actors": True,
    }  # fmt: skip
    if job.workers > 1:
        import ray

        settings["max_concurrent_trials"] = _trials_at_once(ray, options)
    if timeout is not None:
        settings["time_budget_s"] = timeout
    config = tune.TuneConfig(**settings) if job.objectives else _tune_config(tune, job, check, **settings)
    tuner = tune.Tuner(_trainable(tune, job, options), tune_config=config, run_config=_run_config(tune, job.folder))
    tuner.fit()


def _sampler(study: Any, seed: int) -> Any:
    import optuna

    if len(study.directions) > 1:
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


@dataclass(frozen=True)
class _DefineByRun:
    """Optuna's define-by-run space for ``OptunaSearch``: the sweep file's own sampling, conditions included.

    A module-level class, not a closure: Ray pickles the searcher with each experiment checkpoint.
    """

    spec: SweepSpec

    def __call__(self, trial: Any) -> dict[str, Any]:
        drawn = self.spec.sample(trial)
        return {key: value for key, value in drawn.items() if key not in trial.params}


def _study_searcher() -> type:
    """Ray's ``OptunaSearch``, taught zoo's trial numbers and states (defined on first use: Ray is optional).

    Each trial's config carries its Optuna trial number (its folder is ``trial_NNNN``, as with the Optuna
    backend); intermediate values are keyed by epoch; a trial ends ``complete`` with its kept score only when
    it ran to its end (``zoo_finished``), ``pruned`` when ASHA stopped it, ``fail`` with its reason when it
    raised. Ray's ``OptunaSearch`` keeps its Optuna study and trials in attributes it does not document
    (``_ot_study``, ``_ot_trials``); this class reads them, so ``ray`` has a lower bound in the ``ray`` extra.
    """
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    class StudySearch(OptunaSearch):
        def __init__(self, sweep_folder: Path, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.sweep_folder = sweep_folder
            self.last_results: dict[str, dict[str, Any]] = {}
            self.reported_epochs: dict[str, set[int]] = {}

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            config = super().suggest(trial_id)
            if config is None:
                return None
            trial = self._ot_trials[trial_id]
            trial.set_user_attr("backend", "ray")
            trial.set_user_attr("ray_trial_id", trial_id)
            return {**config, TRIAL_KEY: trial.number}

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            self.last_results[trial_id] = result
            self._report(trial_id, result)

        def _report(self, trial_id: str, result: dict[str, Any]) -> None:
            """The epoch's value as the trial's intermediate value at step epoch - 1 (as Optuna's callback)."""
            value, epoch = result.get(self.metric), result.get("zoo_epoch")
            trial = self._ot_trials.get(trial_id)
            if trial is None or isinstance(self.metric, list) or value is None or not epoch:
                return
            reported = self.reported_epochs.setdefault(trial_id, set())
            if math.isfinite(value) and epoch not in reported:
                reported.add(epoch)
                trial.report(float(value), int(epoch) - 1)

        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
            trial = self._ot_trials.get(trial_id)
            if trial is None or trial_id in self._completed_trials:
                return
            result = result or self.last_results.get(trial_id) or {}
            self._report(trial_id, result)  # a result that ends the trial comes here, not to on_trial_result
            for key, attr in (("zoo_run_folder", "run_folder"), ("zoo_seconds", "seconds")):
                if result.get(key) is not None:
                    trial.set_user_attr(attr, result[key])
            reason = error_file(self.sweep_folder, trial.number)
            if error or reason.is_file():
                trial.set_user_attr("error", reason.read_text() if reason.is_file() else "the trial failed")
                self._tell(trial_id, trial, None, TrialState.FAIL)
                return
            if not result.get("zoo_finished"):
                self._tell(trial_id, trial, None, TrialState.PRUNED)
                return
            score = result.get("zoo_score")
            values = [score, *(result.get(o) for o in self.metric[1:])] if isinstance(self.metric, list) else score
            finite = all(v is not None and math.isfinite(v) for v in (values if isinstance(values, list) else [values]))
            if not finite:
                trial.set_user_attr("error", f"{self.metric} is not finite ({values})")
            self._tell(trial_id, trial, values if finite else None, TrialState.COMPLETE if finite else TrialState.FAIL)

        def _tell(self, trial_id: str, trial: Any, values: Any, state: Any) -> None:
            self._ot_study.tell(trial, values, state=state)
            self._completed_trials.add(trial_id)

    return StudySearch


def ray_domain(param: Param) -> Any:
    """The Ray Tune sampling domain of one searched key (a plain value when it is fixed)."""
    from ray import tune

    if param.kind == "fixed":
        return param.values[0]
    if param.kind == "choice":
        return tune.choice(list(param.values))
    low, high = param.values
    if param.kind == "int":
        step = int(param.step or 1)
        if param.log:
            return tune.lograndint(int(low), int(high) + 1)
        return tune.qrandint(int(low), int(high), step) if step > 1 else tune.randint(int(low), int(high) + 1)
    if param.kind == "loguniform":
        return tune.loguniform(float(low), float(high))
    return tune.quniform(float(low), float(high), float(param.step)) if param.step else tune.uniform(low, high)


def _run_pbt(
    study: Any, job: RayJob, check: Any, trials: int, seed: int, options: RayOptions, timeout: float | None
) -> None:
    """Population-based training over ``trials`` trials drawn from the space; then recorded into the study.

    Every ``perturbation_interval`` epochs the bottom quarter of the population continues from a checkpoint of
    the top quarter with perturbed values (PBT's explore: x0.8/x1.2 or a resample for ranges, a neighbour for
    choices).
    """
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.search.basic_variant import BasicVariantGenerator

    job = replace(job, first_number=len(study.get_trials(deepcopy=False)))
    space = {p.key: ray_domain(p) for p in job.spec.params}
    interval = options.perturbation_interval or max(1, check.max_epochs // 4)
    # A list makes PBT step to a neighbouring choice; a choice domain would be multiplied like a range.
    mutations = {
        p.key: list(p.values) if p.kind == "choice" else ray_domain(p) for p in job.spec.params if p.kind != "fixed"
    }
    scheduler = PopulationBasedTraining(
        time_attr="zoo_epoch", perturbation_interval=interval, hyperparam_mutations=mutations, synch=False,
        quantile_fraction=0.25 if trials >= 4 else 0.5,
    )  # fmt: skip
    settings: dict[str, Any] = {
        "scheduler": scheduler,
        "num_samples": trials,
        "search_alg": BasicVariantGenerator(random_state=seed),
        "reuse_actors": True,
    }
    if timeout is not None:
        settings["time_budget_s"] = timeout
    tuner = tune.Tuner(
        _trainable(tune, job, options),
        param_space=space,
        tune_config=_tune_config(tune, job, check, **settings),
        run_config=_run_config(tune, job.folder),
    )
    results = tuner.fit()
    _record_pbt(study, job, results)


def _record_pbt(study: Any, job: RayJob, results: Any) -> None:
    """Write each PBT trial into the study: its final values, its score history, its state and folders."""
    import optuna
    from optuna.trial import TrialState

    for result in sorted(results, key=_trial_index):
        number = job.first_number + _trial_index(result)
        metrics = result.metrics or {}
        values = {p.key: result.config[p.key] for p in job.spec.params if p.kind != "fixed"}
        history = result.metrics_dataframe
        intermediate: dict[int, float] = {}
        if history is not None and job.metric in history and "zoo_epoch" in history:
            for epoch, value in zip(history["zoo_epoch"], history[job.metric], strict=True):
                if value is not None and math.isfinite(value):
                    intermediate[int(epoch)] = float(value)
        reason = error_file(job.folder, number)
        score = metrics.get("zoo_score")
        failed = result.error is not None or reason.is_file() or score is None or not math.isfinite(score)
        state = TrialState.FAIL if failed else TrialState.COMPLETE
        attrs = {
            "backend": "ray",
            "scheduler": "pbt",
            "trial": number,
            "run_folder": metrics.get("zoo_run_folder"),
            "seconds": metrics.get("zoo_seconds"),
            "run_folders": sorted(str(p) for p in (job.folder / "trials").glob(f"*/trial_{number:04d}*")),
        }
        if failed:
            attrs["error"] = reason.read_text() if reason.is_file() else str(result.error or "no score")
        study.add_trial(
            optuna.trial.create_trial(
                params=values,
                distributions={key: _distribution(job.spec, key, value) for key, value in values.items()},
                value=None if failed else float(score),
                intermediate_values=intermediate,
                user_attrs=attrs,
                state=state,
            )
        )


def _trial_index(result: Any) -> int:
    """A PBT trial's index in its experiment, from its id ``<experiment>_<index>`` (or its folder's name)."""
    trial_id = (result.metrics or {}).get("trial_id") or re.search(r"_([0-9a-f]+_\d+)_", Path(result.path).name)[1]
    return int(trial_id.rsplit("_", 1)[1])


def _distribution(spec: SweepSpec, key: str, value: Any) -> Any:
    """An Optuna distribution for a PBT value: the key's range, widened to hold where PBT's explore took it."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    param = next(p for p in spec.params if p.key == key)
    if param.kind == "choice":
        return CategoricalDistribution([c if isinstance(c, int | float | str | bool) else str(c) for c in param.values])
    low, high = min(param.values[0], value), max(param.values[1], value)
    if param.kind == "int":
        return IntDistribution(int(low), int(high), log=param.log)
    return FloatDistribution(float(low), float(high), log=param.kind == "loguniform")
