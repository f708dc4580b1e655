"""The progress bar `zoo fit` shows: Lightning's rich bar, with an epoch count that fits step-based runs."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar
from typing_extensions import override

__all__ = ["ZooProgressBar"]


class ZooProgressBar(RichProgressBar):
    """Lightning's ``RichProgressBar``; a run bounded by steps shows ``Epoch 3 (of a 2000-step run)``.

    Lightning writes ``Epoch 3/-2`` when ``max_epochs`` is -1 (a run bounded by ``max_steps``), since it shows
    ``max_epochs - 1`` as the last epoch. The training loss shown is that of the newest step (a zoo task's
    ``step_loss``), as tasks log it to the loggers only on the steps they write. Reading it waits for the
    device, so on an accelerator it is read at most every ``loss_every_seconds`` (on a CPU, every step).

    Args:
        loss_every_seconds: Least time between two reads of the loss from an accelerator.
        **kwargs: Those of ``RichProgressBar``.
    """

    def __init__(self, loss_every_seconds: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loss_every_seconds = loss_every_seconds
        self._shown_loss: str | None = None
        self._read_at = -math.inf

    @override
    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, int | str | float | dict]:
        metrics = super().get_metrics(trainer, pl_module)
        loss = getattr(pl_module, "step_loss", None)
        if isinstance(loss, torch.Tensor) and trainer.training:
            now = time.monotonic()
            if loss.device.type == "cpu" or now - self._read_at >= self.loss_every_seconds:
                self._shown_loss, self._read_at = f"{loss.item():.3f}", now
            metrics["train/loss"] = self._shown_loss
        return metrics

    @override
    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_epochs is None or trainer.max_epochs < 0:
            bound = f" (of a {trainer.max_steps}-step run)" if trainer.max_steps > 0 else ""
            description = f"Epoch {current_epoch}{bound}"
            return f"{description:{len(self.validation_description)}}"
        return super()._get_train_description(current_epoch)
