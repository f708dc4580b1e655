"""The progress bar `zoo fit` shows: Lightning's rich bar, with an epoch count that fits step-based runs."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar
from typing_extensions import override

__all__ = ["ZooProgressBar"]


class ZooProgressBar(RichProgressBar):
    """Lightning's ``RichProgressBar``; a run bounded by steps shows ``Epoch 3 (of a 2000-step run)``.

    Lightning writes ``Epoch 3/-2`` when ``max_epochs`` is -1 (a run bounded by ``max_steps``), since it shows
    ``max_epochs - 1`` as the last epoch. The training loss shown is that of the newest step (a zoo task's
    ``step_loss``), as tasks log it to the loggers only on the steps they write.
    """

    @override
    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, int | str | float | dict]:
        metrics = super().get_metrics(trainer, pl_module)
        loss = getattr(pl_module, "step_loss", None)
        if isinstance(loss, torch.Tensor) and trainer.training:
            metrics["train/loss"] = f"{loss.item():.3f}"
        return metrics

    @override
    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_epochs is None or trainer.max_epochs < 0:
            bound = f" (of a {trainer.max_steps}-step run)" if trainer.max_steps > 0 else ""
            description = f"Epoch {current_epoch}{bound}"
            return f"{description:{len(self.validation_description)}}"
        return super()._get_train_description(current_epoch)
