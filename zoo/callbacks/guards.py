"""Stop training at the first loss that is not finite, before it reaches the weights."""

from __future__ import annotations

import lightning as L
import torch

__all__ = ["NonFiniteLossError", "StopOnNonFiniteLoss"]


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss is NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Raise :class:`NonFiniteLossError` before the backward pass of a loss that is NaN or infinite.

    Nothing of that step reaches the optimizer, so the parameters, the optimizer state and the checkpoints on
    disk stay those of the last good step; ``ResumableCheckpoint`` does not overwrite ``last`` on this error.
    (The forward pass that produced the loss may already have changed normalisation statistics in memory,
    which is why the message points at the checkpoint to resume from.)
    The message names the step, epoch and batch and the checkpoint to resume from.

    Reading the loss's value each step synchronises an accelerator with the host once per step; on a GPU
    this costs a little throughput in exchange for never stepping on a bad loss.
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:  # noqa: D102
        if bool(torch.isfinite(loss).all()):
            return
        checkpoint = trainer.checkpoint_callback
        saved = getattr(checkpoint, "last_model_path", "") or getattr(checkpoint, "best_model_path", "")
        resume = f"resume from {saved} (--ckpt_path last)" if saved else "no checkpoint has been saved yet"
        raise NonFiniteLossError(
            f"training loss is {loss.detach().float().item()} at step {trainer.global_step} (epoch "
            f"{trainer.current_epoch}, batch {trainer.fit_loop.epoch_loop.batch_idx}); stopped before the optimizer "
            f"step, so no parameter was updated. Last good checkpoint: {resume}. Lower the learning rate, enable "
            "gradient clipping (--trainer.gradient_clip_val) or check the data of this batch."
        )
