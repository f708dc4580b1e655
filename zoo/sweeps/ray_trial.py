"""One trial of a Ray Tune sweep, as it runs in a Ray worker: a zoo run that reports to Tune after each epoch.

The driver (:mod:`zoo.sweeps.on_ray`) hands :func:`run_ray_trial` the trial's values and a :class:`RayJob`; the
trial builds the same ``zoo fit`` as an Optuna trial (:func:`zoo.sweeps.study.trial_args`), so it lands in
``<sweep>/trials/<recipe>/trial_NNNN`` with its config, env.json and checkpoints.

After each validated epoch it reports every logged metric to Tune, with ``zoo_epoch`` (the scheduler's clock),
``zoo_score`` (the metric at the epoch the run keeps so far) and, on the trial's last report, ``zoo_finished``:
Ray marks a trial stopped by ASHA as done like any other, so the flag is how the driver tells a finished trial
from a pruned one. Under population-based training each report carries zoo's ``last.ckpt``; a trial that PBT
restarts from another trial's checkpoint continues in a new run folder, ``trial_NNNN-K``, with its new values
applied to the restored optimizer (see :class:`NewOptimizerSettings`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from typing_extensions import override

from zoo.sweeps.space import SweepSpec

__all__ = ["TRIAL_KEY", "NewOptimizerSettings", "RayJob", "error_file", "run_ray_trial"]

TRIAL_KEY = "zoo_trial"  # the trial's number, which the driver puts into each trial's config
_OPTIMIZER = "model.init_args.optimizer.init_args."
_DONOR_FILE = "zoo_trial.json"


@dataclass(frozen=True)
class RayJob:
    """What every trial of one Ray sweep shares (pickled to the workers).

    Attributes:
        spec: The sweep file, read.
        metric: The metric reported to Tune's scheduler.
        objectives: Further objectives of a multi-objective sweep (``params``).
        folder: The sweep's folder (absolute: a worker's working directory can differ).
        overrides: ``zoo fit`` arguments for every trial.
        cwd: The driver's working directory, which relative paths in the recipe are read from when a worker
            has it (on a cluster the sweep's folder and data must be on shared storage at the same path).
        checkpoints: Report a checkpoint with each epoch (population-based training needs them).
        workers: Ray Train workers per trial (one process per device, data-parallel); 1 trains in the trial's
            own process.
        cpus_per_worker: CPUs each Ray Train worker reserves (``workers`` > 1).
        gpus_per_worker: GPUs each Ray Train worker reserves (``workers`` > 1).
        first_number: Without a searcher (PBT), trial ``i`` of this Ray experiment is trial ``first_number + i``
            of the study. PBT copies a donor's config into the trial it exploits, so the number cannot travel
            in the config there.
    """

    spec: SweepSpec
    metric: str
    objectives: tuple[str, ...]
    folder: Path
    overrides: tuple[str, ...]
    cwd: str
    checkpoints: bool
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    first_number: int = 0


def error_file(folder: Path, number: int) -> Path:
    """Where a failed trial leaves its reason for the driver: ``<sweep>/errors/trial_NNNN.txt``."""
    return folder / "errors" / f"trial_{number:04d}.txt"


def run_ray_trial(config: dict[str, Any], job: RayJob) -> None:
    """Train one trial (Ray Tune's function trainable); a failure leaves its reason in :func:`error_file`.

    A trial Tune restarts from a checkpoint of its own (PBT pauses trials to share the CPUs or GPUs) continues
    in its run folder as a resumed ``zoo fit``; one restarted from another trial's checkpoint (PBT's exploit)
    starts the next run folder of the trial, ``trial_NNNN-K``, from that state with its new values.
    """
    from ray import tune

    if job.workers > 1:
        _run_on_train_workers(config, job)
        return
    if Path(job.cwd).is_dir():
        os.chdir(job.cwd)
    number = int(config[TRIAL_KEY]) if TRIAL_KEY in config else job.first_number + _ray_trial_index()
    values = {key: value for key, value in config.items() if key != TRIAL_KEY}
    args = trial_args_for(job, values, number)
    if job.checkpoints:  # the state at every report, for other trials to continue from
        args += ["--checkpoint.last_every_seconds", "0"]
    restored = tune.get_checkpoint()
    started = time.perf_counter()
    try:
        with restored.as_directory() if restored is not None else nullcontext(None) as directory:
            donor = json.loads((Path(directory) / _DONOR_FILE).read_text()) if directory else None
            own = donor is not None and donor["trial"] == number and Path(donor["run_folder"]).is_dir()
            if own:
                _wait_for_lock(Path(donor["run_folder"]))
                resume = Path(donor["run_folder"]) / "checkpoints" / "restored.ckpt"
                shutil.copyfile(Path(directory) / "last.ckpt", resume)
                args += ["--ckpt_path", str(resume)]
            else:
                for earlier in (job.folder / "trials").glob(f"*/trial_{number:04d}*"):
                    _wait_for_lock(earlier)
                segment = _next_segment(job.folder, number)
                if segment:
                    args[args.index("--trainer.logger.init_args.version") + 1] = f"trial_{number:04d}-{segment}"
            cli = _build(args, job.folder, number)
            reporter = ReportToTune(job, number, values, started)
            cli.trainer.callbacks.append(reporter)
            ckpt_path = cli.config.get("ckpt_path")
            if donor is not None and not own:
                cli.trainer.callbacks.append(NewOptimizerSettings(donor["values"], values))
                ckpt_path = str(Path(directory) / "last.ckpt")
            cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
    except Exception as err:
        if not _stopped_by_tune(err):
            _leave_reason(job.folder, number, f"{type(err).__name__}: {err}")
        raise


def _build(args: list[str], folder: Path, number: int) -> Any:
    """The trial's ``zoo fit``, built; arguments the parser refuses fail the trial with that reason."""
    from zoo.sweeps.study import _fit_cli

    try:
        return _fit_cli(args)
    except SystemExit as exit:  # the parser printed its message to the trial's log
        reason = f"zoo fit refused the trial's arguments (exit {exit.code}; its message is in the trial's log)"
        _leave_reason(folder, number, reason)
        raise RuntimeError(reason) from None


_RAY_DDP = ["--trainer.strategy", '{"class_path": "ray.train.lightning.RayDDPStrategy"}',
            "--trainer.plugins", '[{"class_path": "ray.train.lightning.RayLightningEnvironment"}]',
            "--trainer.devices", "auto", "--trainer.num_nodes", "1"]  # fmt: skip


def _run_on_train_workers(config: dict[str, Any], job: RayJob) -> None:
    """A trial trained data-parallel by a Ray Train ``TorchTrainer`` with ``job.workers`` workers.

    This Tune trial only drives the Train run (Ray Train 2's way to tune a distributed run): the workers
    reserve their own CPUs or GPUs, train with Lightning's DDP through ``RayDDPStrategy`` and
    ``RayLightningEnvironment`` (``prepare_trainer`` checks both), and their reports reach Tune through
    ``TuneReportCallback``.
    """
    from functools import partial

    from ray import train, tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    number = int(config[TRIAL_KEY])
    trainer = TorchTrainer(
        partial(run_train_worker, job=job),
        train_loop_config=config,
        scaling_config=train.ScalingConfig(
            num_workers=job.workers,
            use_gpu=job.gpus_per_worker > 0,
            resources_per_worker={"CPU": job.cpus_per_worker, "GPU": job.gpus_per_worker},
        ),
        run_config=train.RunConfig(
            name=f"trial_{number:04d}-{tune.get_context().get_trial_id()}",
            storage_path=str(job.folder / "ray" / "train"),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()


def run_train_worker(config: dict[str, Any], job: RayJob) -> None:
    """One Ray Train worker of a trial: the trial's ``zoo fit`` on ``RayDDPStrategy``, reporting each epoch."""
    from ray.train.lightning import prepare_trainer

    if Path(job.cwd).is_dir():
        os.chdir(job.cwd)
    number = int(config[TRIAL_KEY])
    values = {key: value for key, value in config.items() if key != TRIAL_KEY}
    args = [*trial_args_for(job, values, number), *_RAY_DDP]
    started = time.perf_counter()
    try:
        cli = _build(args, job.folder, number)
        trainer = prepare_trainer(cli.trainer)
        trainer.callbacks.append(ReportToTune(job, number, values, started))
        trainer.fit(cli.model, datamodule=cli.datamodule)
    except Exception as err:
        if not _stopped_by_tune(err):
            _leave_reason(job.folder, number, f"{type(err).__name__}: {err}")
        raise


def trial_args_for(job: RayJob, values: dict[str, Any], number: int) -> list[str]:
    """The trial's ``zoo fit`` arguments (:func:`zoo.sweeps.study.trial_args`) for this job."""
    from zoo.sweeps.study import trial_args

    return trial_args(job.spec, values, list(job.overrides), job.folder, number)


def _leave_reason(folder: Path, number: int, reason: str) -> None:
    path = error_file(folder, number)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason[:2000])


def _ray_trial_index() -> int:
    """This trial's index in its Ray experiment: Tune names the trials of a variant generator ``<id>_<index>``."""
    from ray import tune

    return int(tune.get_context().get_trial_id().rsplit("_", 1)[1])


def _wait_for_lock(folder: Path, seconds: float = 60.0) -> None:
    """Wait while the trial's previous process, which Tune paused, still releases its run folder."""
    from zoo.callbacks.run_lock import check_run_folder
    from zoo.errors import UsageError

    deadline = time.monotonic() + seconds
    while True:
        try:
            check_run_folder(folder)
            return
        except UsageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _next_segment(folder: Path, number: int) -> int:
    """How many run folders trial ``number`` has so far: a restarted trial continues in the next one."""
    return sum(1 for _ in (folder / "trials").glob(f"*/trial_{number:04d}*"))


def _stopped_by_tune(err: BaseException) -> bool:
    return type(err).__module__.startswith("ray.")


class ReportToTune(L.Callback):
    """Report each validated epoch's metrics to Ray Tune (and, for PBT, zoo's ``last.ckpt`` of that epoch).

    Lightning saves an epoch's checkpoints after every other callback's ``on_train_epoch_end``, so an epoch is
    reported when the next one starts (or when training ends), with its checkpoint written. Tune ends a trial
    it stops or pauses inside ``tune.report``, which is then before any step of the next epoch.
    """

    def __init__(self, job: RayJob, number: int, values: dict[str, Any], started: float) -> None:
        self.job, self.number, self.values, self.started = job, number, values, started
        self._pending: tuple[int, dict[str, Any]] | None = None

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.job.metric in trainer.callback_metrics:  # else no validation this epoch
            metrics = {key: float(value) for key, value in trainer.callback_metrics.items() if value.numel() == 1}
            self._pending = (trainer.current_epoch + 1, metrics)

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is not None:
            self._report(trainer, pl_module, last=False)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The trial's last report: ``zoo_finished`` (Ray marks a trial ASHA stopped as done too)."""
        if self._pending is None:
            metrics = {key: float(value) for key, value in trainer.callback_metrics.items() if value.numel() == 1}
            self._pending = (trainer.current_epoch, metrics)
        self._report(trainer, pl_module, last=True)

    def _report(self, trainer: L.Trainer, module: L.LightningModule, last: bool) -> None:
        from ray import tune

        from zoo.sweeps.study import kept_score, objective_value

        assert self._pending is not None
        epoch, metrics = self._pending
        self._pending = None
        metrics.setdefault(self.job.metric, float("nan"))
        score = kept_score(trainer, self.job.metric)
        metrics.update(
            zoo_epoch=epoch,
            zoo_score=score if math.isfinite(score) else None,
            zoo_run_folder=str(trainer.log_dir),
            zoo_seconds=round(time.perf_counter() - self.started, 2),
        )
        if last:
            metrics["zoo_finished"] = True
            for name in self.job.objectives:
                metrics[name] = objective_value(name, module)
        checkpoint = trainer.checkpoint_callback
        if self.job.workers > 1:  # every worker reports (Ray Train's rule); Tune gets the first one's
            from ray import train

            train.report(metrics)
            return
        if last or not self.job.checkpoints or checkpoint is None or not checkpoint.last_model_path:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as directory:
            _link_or_copy(Path(checkpoint.last_model_path), Path(directory) / "last.ckpt")
            donor = {"trial": self.number, "values": self.values, "run_folder": str(trainer.log_dir)}
            (Path(directory) / _DONOR_FILE).write_text(json.dumps(donor, default=str))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


class NewOptimizerSettings(L.Callback):
    """Carry a PBT trial's new optimizer values into the optimizer state it restores from another trial.

    Restoring a checkpoint brings back the donor's optimizer state, learning rate and weight decay included,
    which would undo PBT's perturbation. Before the state is loaded, each searched optimizer value is scaled by
    new / donor in every parameter group (so groups that use a multiple, e.g. no weight decay on norms, keep it),
    and a changed learning rate scales the schedulers' base rates too; non-numeric values are replaced where the
    group had the donor's.
    """

    def __init__(self, donor: dict[str, Any], new: dict[str, Any]) -> None:
        self.changes = {
            key.removeprefix(_OPTIMIZER): (donor[key], value)
            for key, value in new.items()
            if key.startswith(_OPTIMIZER) and key in donor and donor[key] != value
        }

    @override
    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        for name, (old, new) in self.changes.items():
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (old, new)) and old != 0
            for state in checkpoint.get("optimizer_states", []):
                for group in state.get("param_groups", []):
                    if name not in group:
                        continue
                    if numeric:
                        group[name] = group[name] * new / old
                        if name == "lr" and "initial_lr" in group:
                            group["initial_lr"] = group["initial_lr"] * new / old
                    elif group[name] == old:
                        group[name] = new
            if name == "lr" and numeric:
                for scheduler in checkpoint.get("lr_schedulers", []):
                    for key in ("base_lrs", "_last_lr"):
                        if isinstance(scheduler.get(key), list):
                            scheduler[key] = [rate * new / old for rate in scheduler[key]]
