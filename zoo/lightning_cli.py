"""``zoo fit|validate|test|predict``: LightningCLI with zoo's defaults.

A recipe names a task (``model``), a data module (``data``) and trainer settings, as LightningCLI
``class_path``/``init_args``. On top of plain LightningCLI this adds:

* links from the data module into the task: ``num_classes``, ``in_chans``, ``in_channels``, ``vocab_size``,
  ``block_size``, ``image_size``, ``mean`` and ``std`` come from the data where the task takes them, so recipes
  do not repeat them;
* TensorBoard logging under ``runs/<recipe>/version_N``, a rich progress bar, a learning-rate monitor and the
  non-finite loss guard by default; the resolved
  config (with the seed actually used) is saved there and never overwritten;
* a ``checkpoint`` section for :class:`zoo.callbacks.ResumableCheckpoint`, which keeps the best checkpoint by
  the task's default metric plus ``last.ckpt``, writes atomically, and saves ``last.ckpt`` on SIGTERM;
* ``--ckpt_path last`` resumes the newest ``last.ckpt`` of the recipe's runs, continuing in its folder (the
  config of the resumed invocation is saved beside the original as ``config.resume-N.yaml``); a checkpoint
  path that is missing or truncated is an error that names it;
* ``--test_after_fit`` (default true): ``fit`` ends by testing the best checkpoint, and prints where the
  checkpoints and logs went.
"""

from __future__ import annotations

import inspect
import sys
import time
import warnings
from functools import partial
from importlib import import_module
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.model_helpers import is_overridden

from zoo.callbacks.checkpoint import ResumableCheckpoint, check_checkpoint_file
from zoo.callbacks.guards import StopOnNonFiniteLoss
from zoo.callbacks.metadata import CheckpointMetadata

__all__ = ["ZooLightningCLI", "run_training_command"]

RUNS_DIR = "runs"
_TRAINER_DEFAULTS = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": RUNS_DIR, "name": None},
    },
}
# Data module attributes linked into the task's init arguments of the same name, where both exist: a task
# without such an argument ignores the link, and a data module without the attribute passes None (the
# task's "use the default").
DATA_TO_MODEL_LINKS = (
    "num_classes", "in_chans", "in_channels", "vocab_size", "block_size", "image_size", "mean", "std"
)  # fmt: skip


class ZooLightningCLI(LightningCLI):
    """LightningCLI for any zoo task and data module (both in subclass mode, chosen by ``class_path``)."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        self._started = time.perf_counter()
        super().__init__(
            model_class=L.LightningModule,
            datamodule_class=L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults=_TRAINER_DEFAULTS,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": False},
            parser_kwargs={"description": "Train and evaluate zoo models from recipes."},
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:  # noqa: D102
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
        for name in DATA_TO_MODEL_LINKS:
            parser.link_arguments(
                "data",
                f"model.init_args.{name}",
                compute_fn=partial(_data_attribute, name=name),
                apply_on="instantiate",
            )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then name the run and resolve ``--ckpt_path`` before LightningCLI reads the checkpoint."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        config = self.config[subcommand]
        logger_args = _logger_init_args(config)
        if logger_args is not None and logger_args.get("name") is None:
            logger_args["name"] = _run_name(config)
        try:
            self._resolve_ckpt_path(subcommand, config, logger_args)
        except (FileNotFoundError, ValueError) as err:
            self._parser(subcommand).error(str(err))

    def _resolve_ckpt_path(self, subcommand: str, config: Any, logger_args: Any) -> None:
        ckpt_path = config.get("ckpt_path")
        if ckpt_path in (None, "best", "hpc", "registry") or str(ckpt_path).startswith("registry:"):
            return
        if ckpt_path != "last":
            check_checkpoint_file(ckpt_path)
            return
        run_root = Path(logger_args["save_dir"]) / logger_args["name"] if logger_args is not None else None
        found = (
            sorted(run_root.glob("version_*/checkpoints/last*.ckpt"), key=lambda p: p.stat().st_mtime)
            if run_root
            else []
        )
        if not found:
            _print_on_rank_zero(
                f"--ckpt_path last: no last checkpoint under {run_root}/version_*/checkpoints; starting a new run"
            )
            config.ckpt_path = None
            return
        config.ckpt_path = str(check_checkpoint_file(found[-1]))
        if subcommand == "fit":  # continue in the same run folder, next to the original config
            run_dir = found[-1].parent.parent
            logger_args["version"] = run_dir.name
            resumes = 1 + sum(1 for _ in run_dir.glob("config.resume-*.yaml"))
            self.save_config_kwargs["config_filename"] = f"config.resume-{resumes}.yaml"
        _print_on_rank_zero(f"--ckpt_path last: resuming from {config.ckpt_path}")

    def before_instantiate_classes(self) -> None:
        """Fill the settings that depend on the task: the monitored metric."""
        config = self._subconfig()
        if config.checkpoint.monitor is None:
            task = _import_class(config.model.class_path)
            monitor = getattr(task, "default_monitor", None)
            if monitor is not None:
                config.checkpoint.monitor, config.checkpoint.mode = monitor

    def instantiate_classes(self) -> None:
        """Instantiate as LightningCLI does, then forget links the chosen task does not take.

        jsonargparse skips a link whose target the task lacks, but still records its value in the task's
        hyperparameters, from which ``--ckpt_path`` would later pass it back to ``__init__``.
        """
        super().instantiate_classes()
        accepted = inspect.signature(type(self.model).__init__).parameters
        for name in DATA_TO_MODEL_LINKS:
            if name not in accepted:
                self.model.hparams.pop(name, None)
                getattr(self.model, "_hparams_initial", {}).pop(name, None)

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """Add the default callbacks a recipe did not configure itself.

        A rich progress bar (unless disabled), a learning-rate monitor (when there is a logger), the
        non-finite loss guard, and the metadata (data facts, resolved recipe, metrics) every checkpoint carries.
        """
        trainer_config = self._get(self.config_init, "trainer", default={})
        callbacks = list(trainer_config.get("callbacks") or [])

        def missing(kind: type) -> bool:
            return not any(isinstance(cb, kind) for cb in callbacks)

        if trainer_config.get("enable_progress_bar") is not False and missing(ProgressBar):
            callbacks.append(RichProgressBar())
        if trainer_config.get("logger") not in (False, None) and missing(LearningRateMonitor):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        if missing(StopOnNonFiniteLoss):
            callbacks.append(StopOnNonFiniteLoss())
        if missing(CheckpointMetadata):
            callbacks.append(CheckpointMetadata(*self._recipe_and_text()))
        trainer_config["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)

    def _recipe_and_text(self) -> tuple[str | None, str]:
        """The recipe path(s) given with ``--config`` and the resolved configuration as YAML."""
        config = self._subconfig()
        paths = [str(p) for p in (config.get("config") or [])]
        parser = self.parser if self.subcommand is None else self._parser(self.subcommand)  # run=False: no subcommand
        text = parser.dump(config, skip_none=False, skip_validation=True)
        return (", ".join(paths) or None), text

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
            lines.append(f"  view with             tensorboard --logdir {Path(trainer.log_dir).parent}")
        _print_on_rank_zero("\n".join(lines))

    def _subconfig(self) -> Any:
        return self.config.get(str(self.subcommand), self.config)


def run_training_command(args: list[str]) -> None:
    """Run ``zoo <fit|validate|test|predict> ...`` (``args`` starts with the subcommand)."""
    # Lightning's own use of a deprecated torch API; nothing a zoo user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)
    # LightningCLI warns when given args while sys.argv holds others; from the console they are the same.
    try:
        ZooLightningCLI(args=None if args == sys.argv[1:] else args)
    finally:
        # Lightning leaves the process group of a multi-process run alive; tearing it down at interpreter
        # exit instead can abort the process ("terminate called without an active exception").
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


@rank_zero_only
def _print_on_rank_zero(text: str) -> None:
    print(text, flush=True)


def _data_attribute(data: Any, name: str) -> Any:
    return getattr(data, name, None)


def _logger_init_args(config: Any) -> Any:
    """The init arguments of a TensorBoard/CSV-style logger given as ``class_path``/``init_args``, else ``None``."""
    logger = config.trainer.get("logger")
    if (isinstance(logger, dict) or hasattr(logger, "init_args")) and "save_dir" in logger["init_args"]:
        return logger["init_args"]
    return None


def _checkpoint_lines(checkpoint: ModelCheckpoint) -> list[str]:
    lines = []
    if checkpoint.best_model_path:
        score = checkpoint.best_model_score
        scored = f" ({checkpoint.monitor}={score:.4f})" if score is not None and checkpoint.monitor else ""
        lines.append(f"  best checkpoint       {checkpoint.best_model_path}{scored}")
    if checkpoint.last_model_path:
        lines.append(f"  last checkpoint       {checkpoint.last_model_path}")
    return lines


def _run_name(config: Any) -> str:
    """``cifar10/resnet18`` for ``recipes/cifar10/resnet18.yaml``; the recipe's stem elsewhere; else ``zoo``."""
    configs = config.get("config") or []
    if not configs:
        return "zoo"
    path = Path(str(configs[-1].absolute if hasattr(configs[-1], "absolute") else configs[-1]))
    parts = path.with_suffix("").parts
    if "recipes" in parts:
        return "/".join(parts[len(parts) - parts[::-1].index("recipes") :])
    return path.stem


def _import_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(import_module(module), name)
