"""Checkpoints that are written atomically, resume exactly, and are saved on preemption."""

from __future__ import annotations

import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from zoo.checkpoints import check_file
from zoo.errors import ConfigError, StorageError
from zoo.files import atomic_write

__all__ = ["AtomicCheckpointIO", "ResumableCheckpoint", "check_checkpoint_file"]

check_checkpoint_file = check_file  # the name zoo 0.1 exported; the check lives in zoo.checkpoints


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each local checkpoint to a temporary file beside the target, fsync it, then rename it.

    A reader therefore sees either the previous file or the complete new one, even if the process dies in the
    middle of a write (:func:`zoo.files.atomic_write`; the file gets the mode the umask gives new files).
    Lightning's own writer stages the file in the system temporary folder and moves it, which becomes a
    non-atomic copy when that folder is on another file system than the checkpoints (the usual case on
    clusters), and it does not fsync. Remote paths (``s3://`` and the like) keep Lightning's writer: object
    stores publish whole objects. Loading names the file when it is missing, truncated or damaged.
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        try:
            with atomic_write(path, durable=True) as f:
                torch.save(checkpoint, f)
        except (OSError, RuntimeError) as err:
            # torch's zip writer turns a failed write into "[enforce fail at inline_container.cc...]".
            if isinstance(err, RuntimeError) and "inline_container" not in str(err):
                raise
            target = Path(path)
            free = shutil.disk_usage(target.parent).free / 2**20
            cause = err if isinstance(err, OSError) else err.__context__  # torch keeps the OSError as context
            reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else "the write failed"
            raise StorageError(
                f"could not save {target}: {reason} ({free:.1f} MiB free on that file system); the previous "
                f"{target.name}, if any, is kept"
            ) from err

    @override
    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        if _is_local_file_protocol(path):
            check_file(path)
        kwargs = {} if map_location is None else {"map_location": map_location}
        return super().load_checkpoint(path, weights_only=weights_only, **kwargs)


class ResumableCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (best ``save_top_k`` by ``monitor``, plus ``last``), made resumable.

    On top of ``ModelCheckpoint`` it:

    * installs :class:`AtomicCheckpointIO` when the trainer uses the default writer, so no save leaves a
      truncated file where a good one was;
    * stores the random states of Python, NumPy and torch (CPU and every CUDA device) in each checkpoint and
      restores them right before the first resumed training step, so dropout, stochastic depth and anything
      else drawing from them continue as in an uninterrupted run;
    * keeps ``last`` current without writing it at every epoch: at an epoch's save point it is written when
      ``last_every_seconds`` have passed since it was last written, also when the monitored metric did not
      improve (Lightning 2.6 then writes no ``last``, leaving it at an older epoch), and always when fitting
      ends. A 200-epoch Cora run wrote 355 checkpoints (each fsynced), now about 155 (the best ones);
      a process killed without a signal loses at most that many seconds of training;
    * saves ``last`` every ``every_n_train_steps`` even while the monitored metric does not exist yet (Lightning
      defers such saves to the next validation, which leaves nothing to resume from if a job is preempted in
      its first epoch);
    * saves ``last`` when fitting is stopped by SIGTERM (preemption) or Ctrl+C, in training after the step in
      progress and in validation after the batch in progress, so a job restarted with ``--ckpt_path last``
      loses nothing that finished. Errors, such as a loss that
      stopped being finite, do not overwrite ``last``: the last good checkpoint stays.
    * never writes a state that holds a non-finite value (a weight or a normalisation statistic that became
      NaN or infinite): the save is skipped with a warning naming the tensor, so ``last`` and the best
      checkpoints always hold a state training can resume from. The check is one reduction on the device per
      save.

    Together with the data modules' resumable loaders (:mod:`zoo.data.sampling`), a run stopped mid-epoch and
    resumed ends with the same weights, optimizer state, learning rate and logged metrics as one that ran
    straight through (bitwise on CPU).

    Args:
        *args: Those of ``ModelCheckpoint``.
        save_last: As in ``ModelCheckpoint``, but ``True`` by default.
        last_every_seconds: Least time between two writes of ``last`` at epoch save points (0: every save
            point, as Lightning). Saves asked for with ``every_n_train_steps``, the end of fitting, SIGTERM and
            Ctrl+C always write it.
        **kwargs: Those of ``ModelCheckpoint``.

    Raises:
        ConfigError: If ``last_every_seconds`` is negative.
    """

    def __init__(
        self, *args: Any, save_last: bool | str | None = True, last_every_seconds: float = 60.0, **kwargs: Any
    ) -> None:
        if last_every_seconds < 0:
            raise ConfigError(f"last_every_seconds must be >= 0, got {last_every_seconds}")
        super().__init__(*args, save_last=save_last, **kwargs)
        self.last_every_seconds = last_every_seconds
        self._rng_to_restore: dict[str, Any] | None = None
        self._last_written_at = -math.inf  # time.monotonic() of the newest write of `last`
        self._last_written_step = -1
        self._forcing_last = False

    @property
    def state_key(self) -> str:
        """Identify the state by what is monitored only, so a restart may change how often it saves.

        Lightning's key also holds the save frequencies; a job restarted with, say, another
        ``every_n_train_steps`` would then lose track of its ``last`` and best checkpoints.
        """
        return self._generate_state_key(monitor=self.monitor, mode=self.mode)

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()

    @override
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = _rng_states()

    @override
    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self._rng_to_restore = checkpoint.get("rng_states")

    @override
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._rng_to_restore is not None:
            _set_rng_states(self._rng_to_restore)
            self._rng_to_restore = None

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        due = self._every_n_train_steps >= 1 and trainer.global_step % self._every_n_train_steps == 0
        if due and self.save_last and not self._should_skip_saving_checkpoint(trainer):
            # Lightning deferred this save to validation: keep a resumable `last` now, without marking the
            # step as saved, so the deferred top-k save still happens at validation end.
            previous = self._last_global_step_saved
            self._save_last_now(trainer)
            self._last_global_step_saved = previous

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._keep_last_current(trainer)

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._keep_last_current(trainer)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Bring ``last`` up to the final step if an epoch save point left it behind (see ``last_every_seconds``)."""
        super().on_train_end(trainer, pl_module)
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and not trainer.fast_dev_run
        if self.save_last and fitting and self._last_written_step != trainer.global_step:
            self._save_last_now(trainer)

    @override
    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        if not self._last_due():
            return
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self._last_checkpoint_saved == self.last_model_path and self._last_global_step_saved == trainer.global_step:
            self._last_written_at, self._last_written_step = time.monotonic(), trainer.global_step

    def _last_due(self) -> bool:
        """Whether ``last`` may be written now: asked for outright, or ``last_every_seconds`` after the previous."""
        return self._forcing_last or time.monotonic() - self._last_written_at >= self.last_every_seconds

    def _save_last_now(self, trainer: L.Trainer) -> None:
        """Write ``last`` whenever it was last written."""
        self._forcing_last = True
        try:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        finally:
            self._forcing_last = False

    def _keep_last_current(self, trainer: L.Trainer) -> None:
        """Write ``last`` at each epoch's save point even when no top-k checkpoint was written.

        Lightning (2.6) writes ``last`` only at a step where it also wrote a top-k checkpoint, so a run whose
        monitored metric stopped improving would leave ``last`` at an older epoch and ``--ckpt_path last`` would
        silently repeat epochs.
        """
        if self.save_last and self._last_due() and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @override
    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        bad = _first_non_finite(trainer.lightning_module)
        if bad is None:
            super()._save_checkpoint(trainer, filepath)
            return
        # Not last_model_path: Lightning points it at the file it is about to write, which this save skips.
        saved = self.last_finite_checkpoint
        kept = f"{saved} keeps step {self._last_global_step_saved}" if saved else "no checkpoint has been saved yet"
        rank_zero_warn(
            f"not saving {filepath} at step {trainer.global_step}: {bad} holds NaN or infinite values, and a "
            f"checkpoint must be a state training can resume from; {kept}"
        )

    @property
    def last_finite_checkpoint(self) -> str:
        """The newest checkpoint written, which by construction holds only finite values ("" before any)."""
        return self._last_checkpoint_saved or ""

    @override
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # In training or in the validation inside fit (the weights are those after the last finished step;
        # EMA stores them right even while its average is swapped in for validation).
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and trainer.global_step > 0
        if isinstance(exception, (SIGTERMException, KeyboardInterrupt)) and fitting:
            self._save_last_now(trainer)
            rank_zero_info(
                f"{type(exception).__name__}: saved {self.last_model_path} at step {trainer.global_step}; "
                "resume with --ckpt_path last"
            )
        else:
            super().on_exception(trainer, pl_module, exception)


def _first_non_finite(module: L.LightningModule) -> str | None:
    """The name of a floating-point parameter or buffer of ``module`` that is not finite, or ``None``.

    One flag is reduced on the device and read once; the names are looked for only when it is set.
    """
    tensors = {name: t for name, t in module.state_dict().items() if t.is_floating_point() and t.numel()}
    if not tensors:
        return None
    finite = torch.stack([torch.isfinite(t).all() for t in tensors.values()])
    if bool(finite.all()):
        return None
    return next(name for name, ok in zip(tensors, finite.tolist(), strict=True) if not ok)


def _rng_states() -> dict[str, Any]:
    """Every global random state, in types ``torch.load(weights_only=True)`` accepts."""
    version, python_state, gauss_next = random.getstate()
    _, keys, position, has_gauss, cached_gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gauss": float(cached_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    python, numpy_state = states["python"], states["numpy"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gauss"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
