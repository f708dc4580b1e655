"""Stop training at the first loss that is not finite, before it reaches the weights."""

from __future__ import annotations

import lightning as L
import torch
from torch.optim import Optimizer
from typing_extensions import override

__all__ = ["NonFiniteLossError", "StopOnNonFiniteLoss"]


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss is NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Raise :class:`NonFiniteLossError` before the optimizer steps on a loss that is NaN or infinite.

    Each loss is checked on its device as it comes (no synchronisation); the verdict is read once, right
    before the optimizer step, and covers every micro-batch of a gradient-accumulation window. Nothing of the
    bad step reaches the parameters or the optimizer state, and ``ResumableCheckpoint`` does not overwrite
    ``last`` on this error, so the checkpoints on disk stay those of the last good step. (The forward pass
    that produced the loss may already have changed normalisation statistics in memory, which is why the
    message points at the checkpoint to resume from.) The message names the step, epoch and batch.

    Reading the verdict synchronises an accelerator with the host once per optimizer step, after the backward
    pass has been queued.
    """

    def __init__(self) -> None:
        self._finite: torch.Tensor | None = None
        self._first_bad_loss: torch.Tensor | None = None

    @override
    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        finite = torch.isfinite(loss.detach()).all()
        self._finite = finite if self._finite is None else self._finite & finite
        if self._first_bad_loss is None:
            self._first_bad_loss = loss.detach()
        else:  # keep the first non-finite value for the message, without reading it now
            self._first_bad_loss = torch.where(
                torch.isfinite(self._first_bad_loss), loss.detach(), self._first_bad_loss
            )

    @override
    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Optimizer) -> None:
        finite, bad = self._finite, self._first_bad_loss
        self._finite = self._first_bad_loss = None
        if finite is None or bool(finite):
            return
        checkpoint = trainer.checkpoint_callback
        # ResumableCheckpoint never writes a non-finite state, so its newest file is one to resume from.
        saved = (
            getattr(checkpoint, "last_finite_checkpoint", "")
            or getattr(checkpoint, "last_model_path", "")
            or getattr(checkpoint, "best_model_path", "")
        )
        resume = f"resume from {saved} (--ckpt_path last)" if saved else "no checkpoint has been saved yet"
        raise NonFiniteLossError(
            f"training loss is {bad.float().item()} at step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {trainer.fit_loop.epoch_loop.batch_idx}); stopped before the optimizer step, so no parameter "
            f"was updated. Last good checkpoint: {resume}. Lower the learning rate, enable gradient clipping "
            "(--trainer.gradient_clip_val) or check the data of this batch."
        )
