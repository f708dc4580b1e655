"""Checkpoints that are written atomically, resume exactly, and are saved on preemption."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from zoo.checkpoints import check_file
from zoo.errors import StorageError
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
    * saves ``last`` every ``every_n_train_steps`` even while the monitored metric does not exist yet (Lightning
      defers such saves to the next validation, which leaves nothing to resume from if a job is preempted in
      its first epoch);
    * saves ``last`` when training is stopped by SIGTERM (preemption) or Ctrl+C, after the step in progress,
      so a job restarted with ``--ckpt_path last`` loses nothing that finished. Errors, such as a loss that
      stopped being finite, do not overwrite ``last``: the last good checkpoint stays.

    Together with the data modules' resumable loaders (:mod:`zoo.data.sampling`), a run stopped mid-epoch and
    resumed ends with the same weights, optimizer state, learning rate and logged metrics as one that ran
    straight through (bitwise on CPU).

    Takes every argument of ``ModelCheckpoint``; ``save_last`` defaults to ``True``.
    """

    def __init__(self, *args: Any, save_last: bool | str | None = True, **kwargs: Any) -> None:
        super().__init__(*args, save_last=save_last, **kwargs)
        self._rng_to_restore: dict[str, Any] | None = None

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
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = previous

    @override
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, (SIGTERMException, KeyboardInterrupt)) and trainer.training:
            candidates = self._monitor_candidates(trainer)
            self._save_last_checkpoint(trainer, candidates)
            rank_zero_info(
                f"{type(exception).__name__}: saved {self.last_model_path} at step {trainer.global_step}; "
                "resume with --ckpt_path last"
            )
        else:
            super().on_exception(trainer, pl_module, exception)


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
