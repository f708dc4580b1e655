"""``zoo fit|validate|test|predict``: LightningCLI with zoo's defaults.

A recipe names a task (``model``), a data module (``data``) and trainer settings, as LightningCLI
``class_path``/``init_args``. On top of plain LightningCLI this adds:

* links from the data module into the task: the data's facts (:class:`zoo.data.DataFacts`: ``num_classes``,
  ``in_chans``, ``in_channels``, ``vocab_size``, ``block_size``, ``image_size``, ``mean``, ``std``, ...) are
  passed to the task's ``__init__`` arguments of the same name, and only to those it has, so recipes do not
  repeat them (a value a recipe does give must agree with the data);
* TensorBoard logging under ``runs/<recipe>/version_N`` (``runs/`` becomes ``--trainer.default_root_dir``
  when one is given; a recipe run on other data is named after that data, ``pubmed/gcn``), a rich progress
  bar, a learning-rate monitor and the non-finite loss guard by default; the resolved config (with the seed
  actually used) is saved there and never overwritten. With ``--trainer.logger false`` the run folder is the
  same, without the TensorBoard logs;
* a ``checkpoint`` section for :class:`zoo.callbacks.ResumableCheckpoint`, which keeps the best checkpoint by
  the task's default metric plus ``last.ckpt``, writes atomically, and saves ``last.ckpt`` on SIGTERM;
* ``--ckpt_path last`` and ``--ckpt_path best`` name the newest ``last.ckpt`` of the recipe's runs and the best
  checkpoint of its newest run, in any later process. A ``fit`` resuming a checkpoint of the recipe's runs
  (``last``, ``best`` or its path) continues in the folder that wrote it (the config of the resumed invocation
  is saved beside the original as ``config.resume-N.yaml``); a checkpoint path that is missing or truncated is
  an error that names it;
* ``--test_after_fit`` (default true): ``fit`` ends by testing the best checkpoint, and prints where the
  checkpoints and logs went.
"""

from __future__ import annotations

import inspect
import signal
import sys
import time
import warnings
from functools import partial
from importlib import import_module
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar, Timer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.trainer.states import RunningStage, TrainerFn
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.model_helpers import is_overridden
from typing_extensions import override

from zoo.callbacks.checkpoint import ResumableCheckpoint
from zoo.callbacks.guards import StopOnNonFiniteLoss
from zoo.callbacks.metadata import CheckpointMetadata
from zoo.callbacks.progress import ZooProgressBar
from zoo.callbacks.run_lock import RunFolderLock, check_run_folder
from zoo.callbacks.run_record import SaveRunRecord
from zoo.checkpoints import check_file, load_safely
from zoo.data.facts import DataFacts
from zoo.errors import ConfigError, MissingFileError, UsageError, ZooError
from zoo.provenance import run_environment
from zoo.run_folders import RUNS_DIR, RunPlace, run_name, under_root
from zoo.tracking import TrackingPlan, plan_tracking

PROFILER_NAMES = ("simple", "advanced", "pytorch")  # zoo.profilers.PROFILERS, without importing it at start-up

__all__ = ["ZooLightningCLI", "run_training_command"]

_TRAINER_DEFAULTS = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": RUNS_DIR, "name": None},
    },
}


class ZooLightningCLI(LightningCLI):
    """LightningCLI for any zoo task and data module (both in subclass mode, chosen by ``class_path``).

    Args:
        args: The arguments (``sys.argv`` when ``None``).
        run: Run the subcommand, as LightningCLI's ``run``.
        sigterm_handler: The process's SIGTERM handler, told which trainer to watch (the `zoo` command installs
            one; library use leaves SIGTERM to Lightning).
    """

    def __init__(
        self, args: list[str] | None = None, run: bool = True, sigterm_handler: _SigtermOutsideTraining | None = None
    ) -> None:
        self._started = time.perf_counter()
        self._without_subcommand = not run
        self._run_folder: Path | None = None
        self._place: RunPlace | None = None
        self._tracking: TrackingPlan | None = None
        self.sigterm_handler = sigterm_handler
        super().__init__(
            model_class=L.LightningModule,
            datamodule_class=L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=SaveRunRecord,
            trainer_defaults=_TRAINER_DEFAULTS,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": False},
            parser_kwargs={"description": "Train and evaluate zoo models from recipes.", "allow_abbrev": False},
            args=args,
            run=run,
        )

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ResumableCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "checkpoint.filename": "epoch{epoch:03d}-step{step:06d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=True,
            help=(
                "After `fit`, test the best checkpoint on the data module's test split, or validate it when the "
                "data has no test split (fit only)."
            ),
        )
        add_tracking_arguments(parser)
        if self._without_subcommand:  # `fit` declares it; library code without subcommands passes it to fit()
            parser.add_argument(
                "--ckpt_path", type=str | None, default=None,
                help="A checkpoint to continue from (last, best or a path); the run continues in its folder and "
                "the caller passes cli.config.ckpt_path to trainer.fit.",
            )  # fmt: skip
        parser.add_argument(
            "--profile", type=str | None, default=None,
            help="Profile the run with Lightning's simple, advanced or pytorch profiler; the report (and the "
            "PyTorch trace, for TensorBoard's profiler plugin) goes to the run folder.",
        )  # fmt: skip

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then place the run and resolve ``--ckpt_path`` before LightningCLI reads the checkpoint.

        Without a subcommand (``run=False``, for library code that calls ``trainer.fit`` itself) the run is placed
        as for ``fit``.
        """
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config if subcommand is None else self.config[subcommand]
        try:
            self._place_run(subcommand or "fit", config)
        except (FileNotFoundError, ValueError, ZooError) as err:
            (parser if subcommand is None else self._parser(subcommand)).error(str(err))

    def _place_run(self, subcommand: str, config: Any) -> None:
        """Choose the run folder, ``<root>/<name>/version_N``, with a logger or without one.

        ``root`` is ``runs/`` or the ``--trainer.default_root_dir`` given. A ``fit`` that resumes a checkpoint
        of this recipe's runs (``last``, ``best`` or a path) continues in the folder that wrote it and saves its
        config beside the original as ``config.resume-N.yaml``.
        """
        _mlflow_logger_as_tracking(config)
        logger_args = _logger_init_args(config)
        root = config.trainer.get("default_root_dir")
        place = None
        if logger_args is not None:
            if logger_args.get("name") is None:
                logger_args["name"] = run_name(config)
            if root and logger_args.get("save_dir") == RUNS_DIR:
                logger_args["save_dir"] = root
            place = RunPlace(Path(logger_args["save_dir"]), str(logger_args["name"]))
        elif config.trainer.get("logger") is False:
            place = RunPlace(under_root(root), run_name(config))
        self._place = place
        resumed = self._resolve_ckpt_path(subcommand, config, place)
        if resumed is not None:
            check_run_folder(resumed)  # not while another zoo fit still writes it
            resumes = 1 + sum(1 for _ in resumed.glob("config.resume-*.yaml"))
            self.save_config_kwargs["config_filename"] = f"config.resume-{resumes}.yaml"
        if logger_args is not None:
            if resumed is not None:
                logger_args["version"] = resumed.name
            elif logger_args.get("version") is not None:
                version = logger_args["version"]
                _refuse_a_taken_folder(place.folder / (version if isinstance(version, str) else f"version_{version}"))
        elif place is not None:  # no logger: Lightning writes the config and checkpoints into default_root_dir
            self._run_folder = resumed or place.folder / place.next_version()
        if config.get("profile") is not None and config.profile not in PROFILER_NAMES:
            raise ConfigError(f"--profile {config.profile!r}: choose one of {', '.join(PROFILER_NAMES)}")
        self._tracking = plan_tracking(
            config.get("tracking"),
            config.get("tracking_uri"),
            place.root if place is not None else under_root(root),
            resumed=resumed,
            experiment=config.get("tracking_experiment"),
            log_checkpoints=bool(config.get("tracking_checkpoints")),
            system_metrics=bool(config.get("tracking_system_metrics")),
            parent_run=config.get("tracking_parent_run"),
        )

    def _resolve_ckpt_path(self, subcommand: str, config: Any, place: RunPlace | None) -> Path | None:
        """Check ``--ckpt_path`` and turn ``last`` and ``best`` into paths; the run folder a ``fit`` continues in."""
        ckpt_path = config.get("ckpt_path")
        if ckpt_path in (None, "hpc", "registry") or str(ckpt_path).startswith("registry:"):
            return None
        if ckpt_path == "best" and place is None:
            return None  # a custom logger: Lightning's own meaning (the best of this process's fit)
        if ckpt_path == "last":
            found = place.newest_last() if place is not None else None
            if found is None:
                where = f"{place.folder}/version_*/checkpoints" if place else "the run folder (no logger is set)"
                if subcommand != "fit":
                    raise MissingFileError(
                        f"--ckpt_path last: no last checkpoint under {where}, so there is nothing to {subcommand}; "
                        "train with `zoo fit` first, or pass the path of a checkpoint"
                    )
                _print_on_rank_zero(f"--ckpt_path last: no last checkpoint under {where}; starting a new run")
                config.ckpt_path = None
                return None
        else:
            found = place.newest_best() if ckpt_path == "best" else Path(ckpt_path)
        config.ckpt_path = str(self._check_task_of(check_file(found), config))
        if ckpt_path in ("last", "best"):
            doing = "resuming from" if subcommand == "fit" else "using"
            _print_on_rank_zero(f"--ckpt_path {ckpt_path}: {doing} {found}")
        return place.holds(found) if subcommand == "fit" and place is not None else None

    @staticmethod
    def _check_task_of(path: Path, config: Any) -> Path:
        """Refuse a checkpoint of another task than the recipe's (Lightning would silently swap the task)."""
        # `path` was checked (check_file); mmap reads the small pickle, not the weights.
        recorded = (load_safely(path, mmap=True).get("hyper_parameters") or {}).get("_class_path")
        wanted = config.model.get("class_path") if config.get("model") else None
        if recorded is not None and wanted is not None and recorded != wanted:
            raise ConfigError(
                f"checkpoint {path} holds a {recorded}, but the recipe's task is {wanted}; use a recipe of that task "
                "(the config.yaml saved beside the checkpoint's run), or a checkpoint of this one"
            )
        return path

    @override
    def before_instantiate_classes(self) -> None:
        """Fill what depends on the chosen task: the monitored metric, and the data facts it accepts."""
        config = self._subconfig()
        task = _import_class(config.model.class_path)
        if config.checkpoint.monitor is None:
            monitor = getattr(task, "default_monitor", None)
            if monitor is not None:
                config.checkpoint.monitor, config.checkpoint.mode = monitor
        self._link_data_facts(task, config)

    def _link_data_facts(self, task: type, config: Any) -> None:
        """Link the data module's facts into the task arguments of the same name that the task has.

        The links are added once the task is known, so a task is never given (nor records in its
        hyperparameters) a fact it does not take.
        """
        parser = self.parser if self.subcommand is None else self._parser(self.subcommand)
        parameters = inspect.signature(task.__init__).parameters
        given = config.model.get("init_args") or {}
        for name in DataFacts.linkable():
            if name in parameters:
                # A value other than the task's default was set in the recipe: it must agree with the data.
                value = given.get(name)
                chosen = None if value == parameters[name].default else value
                parser.link_arguments(
                    "data",
                    f"model.init_args.{name}",
                    compute_fn=partial(_data_fact, name=name, given=chosen),
                    apply_on="instantiate",
                )

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """Add the default callbacks a recipe did not configure itself.

        A rich progress bar (unless disabled), a learning-rate monitor (when there is a logger), the
        non-finite loss guard, the metadata (data facts, resolved recipe, metrics) every checkpoint carries, and
        the run-folder lock that keeps a second writer out.
        """
        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = list(trainer_config.get("callbacks") or [])

        def missing(kind: type) -> bool:
            return not any(isinstance(cb, kind) for cb in callbacks)

        environment = self._environment()
        self.save_config_kwargs["environment"] = environment  # for SaveRunRecord: env.json beside config.yaml
        if self._tracking is not None:
            self._add_mlflow(trainer_config, callbacks, environment)
        profile = self._subconfig().get("profile")
        if profile is not None:
            from zoo.profilers import make_profiler

            logger = trainer_config.get("logger")
            folder = Path(logger.log_dir) if hasattr(logger, "log_dir") else self._run_folder
            trainer_config["profiler"] = make_profiler(profile, folder or Path.cwd())
        if trainer_config.get("enable_progress_bar") is not False and missing(ProgressBar):
            callbacks.append(ZooProgressBar())
        if trainer_config.get("logger") not in (False, None) and missing(LearningRateMonitor):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        if missing(StopOnNonFiniteLoss):
            callbacks.append(StopOnNonFiniteLoss())
        if missing(CheckpointMetadata):
            callbacks.append(CheckpointMetadata(*self._recipe_and_text(), environment=environment))
        if missing(RunFolderLock):
            callbacks.append(RunFolderLock())
        trainer_config["callbacks"] = callbacks
        if self._run_folder is not None:
            trainer_config["default_root_dir"] = str(self._run_folder)  # not in the saved config: it names the root
        trainer = super().instantiate_trainer(**kwargs)
        if self.sigterm_handler is not None:
            self.sigterm_handler.trainer = trainer
        return trainer

    def _environment(self) -> dict[str, Any]:
        """:func:`zoo.provenance.run_environment` of this run; the git state is that of the first recipe's repo."""
        config = self._subconfig()
        recipes = [Path(str(p)) for p in (config.get("config") or [])]
        seed = config.get("seed_everything")
        return run_environment(
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            repo=recipes[0].resolve().parent if recipes and recipes[0].is_file() else None,
        )

    def _add_mlflow(self, trainer_config: dict[str, Any], callbacks: list[Any], environment: dict[str, Any]) -> None:
        """Log to MLflow beside the run's logger.

        The MLflow run is named after the run folder and, when the run has no logger, takes its place (with the
        run folder as ``save_dir``, where the config and checkpoints go).
        """
        from zoo.tracking.mlflow_logger import ZooMLFlowLogger
        from zoo.tracking.record import MLflowRunRecord

        plan = self._tracking
        assert plan is not None and self._place is not None
        logger = trainer_config.get("logger")
        run_folder = Path(logger.log_dir) if hasattr(logger, "log_dir") else self._run_folder
        run = f"{self._place.name}/{run_folder.name}" if run_folder is not None else self._place.name
        mlflow = ZooMLFlowLogger(
            experiment_name=plan.experiment or self._place.name,
            run_name=run,
            tracking_uri=plan.uri,
            run_id=plan.run_id,
            run_dir=str(run_folder) if run_folder is not None else None,
            log_module_hparams=False,
            artifact_location=plan.artifact_location,
            tags={"mlflow.parentRunId": plan.parent_run} if plan.parent_run else None,
        )
        if logger in (False, None):
            trainer_config["logger"] = [mlflow]
            checkpoint = self._get(self.config_init, "checkpoint", default=None)
            if run_folder is not None and isinstance(checkpoint, ModelCheckpoint) and checkpoint.dirpath is None:
                checkpoint.dirpath = str(run_folder / "checkpoints")
        else:
            trainer_config["logger"] = [*(logger if isinstance(logger, list) else [logger]), mlflow]
        config = self._subconfig()
        text = self._recipe_and_text()[1]
        plain = config.clone().as_dict()
        # Recipe paths (logged as files), a URI that may hold credentials, and what every resume changes.
        for key in ("config", "tracking_uri", "ckpt_path"):
            plain.pop(key, None)
        if isinstance(plain.get("trainer", {}).get("logger"), dict):
            plain["trainer"]["logger"].get("init_args", {}).pop("version", None)
        callbacks.append(
            MLflowRunRecord(
                mlflow,
                plan,
                plain,
                text,
                config_name=self.save_config_kwargs.get("config_filename", "config.yaml"),
                recipes=[str(p) for p in (config.get("config") or [])],
                environment=environment,
            )
        )
        if self._run_folder is not None and logger in (False, None):
            callbacks.append(LearningRateMonitor(logging_interval="step"))

    def _recipe_and_text(self) -> tuple[str | None, str]:
        """The recipe path(s) given with ``--config`` and the resolved configuration as YAML."""
        config = self._subconfig()
        paths = [str(p) for p in (config.get("config") or [])]
        parser = self.parser if self.subcommand is None else self._parser(self.subcommand)  # run=False: no subcommand
        text = parser.dump(config, skip_none=False, skip_validation=True)
        return (", ".join(paths) or None), text

    def before_fit(self) -> None:
        """Say so when nothing bounds the run (Lightning then trains until it is stopped)."""
        timed = any(isinstance(callback, Timer) for callback in self.trainer.callbacks)  # --trainer.max_time
        if self.trainer.max_epochs == -1 and self.trainer.max_steps == -1 and not timed:
            _print_on_rank_zero(
                "max_epochs=-1 and no max_steps or max_time: training runs until it is stopped "
                "(Ctrl+C or SIGTERM saves last.ckpt first)"
            )

    def after_fit(self) -> None:
        """Test the best checkpoint when asked, then say where everything went."""
        checkpoint = self.trainer.checkpoint_callback
        # Read before testing: restoring the best checkpoint also restores the callback's older state.
        saved = _checkpoint_lines(checkpoint) if isinstance(checkpoint, ModelCheckpoint) else []
        results: dict[str, float] = {}
        trainer = self.trainer
        data = self.datamodule
        has_test = data is not None and getattr(data, "has_test_data", is_overridden("test_dataloader", data))
        if self._subconfig().test_after_fit and not trainer.fast_dev_run and not trainer.interrupted:
            if has_test:
                ckpt_path = "best" if saved and checkpoint.best_model_path else None
                results = trainer.test(self.model, datamodule=data, ckpt_path=ckpt_path, verbose=False)[0]
            elif data is not None and is_overridden("val_dataloader", data):
                # No test split (e.g. a text corpus): report the best checkpoint on the validation split.
                ckpt_path = "best" if saved and checkpoint.best_model_path else None
                results = trainer.validate(self.model, datamodule=data, ckpt_path=ckpt_path, verbose=False)[0]
        lines = [f"zoo fit finished in {time.perf_counter() - self._started:.0f} s"]
        lines += [f"  {name:<22}{value:.4f}" for name, value in sorted(results.items())]
        lines += saved
        if trainer.log_dir:
            lines.append(f"  logs and config       {trainer.log_dir}")
            lines += _profile_lines(Path(trainer.log_dir), self._subconfig().get("profile"))
        if trainer.logger is not None and trainer.log_dir:
            lines.append(f"  view with             tensorboard --logdir {Path(trainer.log_dir).parent}")
        _print_on_rank_zero("\n".join(lines))

    def _subconfig(self) -> Any:
        return self.config.get(str(self.subcommand), self.config)


class _SigtermOutsideTraining:
    """A SIGTERM handler that stops everything but training at once.

    While ``fit`` trains or validates, Lightning's own handler (which calls this one after it) lets the step or
    batch in progress finish, then stops, and ``ResumableCheckpoint`` saves ``last``. Anywhere else (starting
    up, testing, predicting, sampling for the FID) Lightning would only set a flag that nothing reads for as
    long as the phase lasts, so this raises ``SIGTERMException`` right away.
    """

    def __init__(self) -> None:
        self.trainer: L.Trainer | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        trainer = self.trainer
        fitting = trainer is not None and trainer.state.fn == TrainerFn.FITTING
        if not (fitting and trainer.state.stage in (RunningStage.TRAINING, RunningStage.VALIDATING)):
            raise SIGTERMException


def run_training_command(args: list[str]) -> None:
    """Run ``zoo <fit|validate|test|predict> ...`` (``args`` starts with the subcommand).

    A run stopped by SIGTERM exits with status 143 (128 + 15), as schedulers expect of a job that did not
    finish, after ``fit`` saved ``last.ckpt``.
    """
    # Lightning's own use of a deprecated torch API; nothing a zoo user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)
    handler = _SigtermOutsideTraining()
    previous = signal.signal(signal.SIGTERM, handler)
    # LightningCLI warns when given args while sys.argv holds others; from the console they are the same.
    try:
        ZooLightningCLI(args=None if args == sys.argv[1:] else args, sigterm_handler=handler)
    except SIGTERMException:
        _print_on_rank_zero("stopped by SIGTERM; a fit resumes from its last.ckpt with --ckpt_path last")
        sys.exit(143)
    finally:
        signal.signal(signal.SIGTERM, previous)
        # Lightning leaves the process group of a multi-process run alive; tearing it down at interpreter
        # exit instead can abort the process ("terminate called without an active exception").
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


@rank_zero_only
def _print_on_rank_zero(text: str) -> None:
    print(text, flush=True)


def _data_fact(data: Any, name: str, given: Any) -> Any:
    """The data module's fact ``name`` (``None``: the task's default), checked against a value the recipe gave."""
    value = DataFacts.of(data).links({name}).get(name)
    if given is not None and value is not None and _plain(given) != value:
        raise ConfigError(  # jsonargparse wraps it; the `zoo` command's error boundary finds it (exit 2)
            f"model.init_args.{name}={given} disagrees with the data module's {name}={value}; leave it out of the "
            "recipe (it is linked from the data) or change the data"
        )
    return value if value is not None else given


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _logger_init_args(config: Any) -> Any:
    """The init arguments of a TensorBoard/CSV-style logger given as ``class_path``/``init_args``, else ``None``."""
    logger = config.trainer.get("logger")
    if isinstance(logger, dict) or hasattr(logger, "init_args"):
        init_args = logger["init_args"]
        if "save_dir" in init_args and "name" in init_args:
            return init_args
    return None


def add_tracking_arguments(parser: LightningArgumentParser) -> None:
    """``--tracking`` and its settings (see :mod:`zoo.tracking`)."""
    parser.add_argument(
        "--tracking", type=str, default="none",
        help="Also log the run to an experiment tracker: mlflow or none (pip install 'lightning-zoo[tracking]').",
    )  # fmt: skip
    parser.add_argument(
        "--tracking_uri", type=str | None, default=None,
        help="The MLflow tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///<runs>/mlflow.db).",
    )  # fmt: skip
    parser.add_argument(
        "--tracking_experiment", type=str | None, default=None,
        help="The MLflow experiment (default: the run's name, e.g. cora/gcn).",
    )  # fmt: skip
    parser.add_argument(
        "--tracking_checkpoints", type=bool, default=False,
        help="Upload the best checkpoint to the tracker at the end of fit (its path is always logged).",
    )  # fmt: skip
    parser.add_argument(
        "--tracking_parent_run", type=str | None, default=None,
        help="Nest the MLflow run under this MLflow run id (zoo tune groups its trials so).",
    )  # fmt: skip
    parser.add_argument(
        "--tracking_system_metrics", type=bool, default=False,
        help="Log CPU, memory, disk, network (and GPU) utilisation to MLflow every 10 s.",
    )  # fmt: skip


def _mlflow_logger_as_tracking(config: Any) -> None:
    """Turn ``--trainer.logger MLFlowLogger`` into ``--tracking mlflow`` beside the default TensorBoard logger.

    MLflow alone gives the run no folder (Lightning's logger has no local directory for a database or server
    store) and zoo's run layout, ``--ckpt_path last`` and ``env.json`` need one.
    """
    logger = config.trainer.get("logger")
    class_path = str(logger.get("class_path", "")) if hasattr(logger, "get") else ""
    if class_path.rsplit(".", 1)[-1] not in ("MLFlowLogger", "ZooMLFlowLogger"):
        return
    from jsonargparse import Namespace

    args = logger.get("init_args") or {}
    config.tracking = "mlflow"
    config.tracking_uri = config.get("tracking_uri") or args.get("tracking_uri")
    if not config.get("tracking_experiment") and args.get("experiment_name") not in (None, "lightning_logs"):
        config.tracking_experiment = args.get("experiment_name")
    default = _TRAINER_DEFAULTS["logger"]
    config.trainer.logger = Namespace(class_path=default["class_path"], init_args=Namespace(**default["init_args"]))
    _print_on_rank_zero("--trainer.logger MLFlowLogger: logging to MLflow beside TensorBoard (as --tracking mlflow)")


def _profile_lines(folder: Path, profile: str | None) -> list[str]:
    """Where ``--profile`` wrote its report, and the top of the PyTorch profiler's operator table."""
    if profile is None:
        return []
    lines = [f"  profile               {p}" for p in sorted(folder.glob("*profile-*.txt"))]
    traces = sorted((folder / "profile").glob("*.pt.trace.json"))
    if traces:
        lines.append(f"  profiler trace        {traces[-1]} (tensorboard --logdir {folder})")
    table = folder / "fit-profile-pytorch.txt"
    if table.is_file():
        lines += ["", *table.read_text().splitlines()[:30]]
    return lines


def _checkpoint_lines(checkpoint: ModelCheckpoint) -> list[str]:
    lines = []
    if checkpoint.best_model_path:
        score = checkpoint.best_model_score
        scored = f" ({checkpoint.monitor}={score:.4f})" if score is not None and checkpoint.monitor else ""
        lines.append(f"  best checkpoint       {checkpoint.best_model_path}{scored}")
    if checkpoint.last_model_path:
        lines.append(f"  last checkpoint       {checkpoint.last_model_path}")
    return lines


def _refuse_a_taken_folder(folder: Path) -> None:
    """Refuse a run folder named on the command line that already holds a run (its config would be overwritten)."""
    if (folder / "config.yaml").exists():
        raise UsageError(
            f"run folder {folder} already holds a run (its config.yaml); choose another "
            "--trainer.logger.init_args.version, or continue that run with --ckpt_path last"
        )


def _import_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(import_module(module), name)
