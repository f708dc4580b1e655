"""``configure_optimizers`` shared by the tasks: weight-decay (and layer-decay) groups plus a scheduler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from zoo.optim import build_lr_scheduler, build_optimizer

__all__ = ["optimization_config"]


def optimization_config(
    module: nn.Module,
    optimizer: Callable[..., Optimizer],
    lr_scheduler: Callable[..., LRScheduler] | None,
    interval: str,
    total_steps: Callable[[], int | float],
    layer_decay: float | None = None,
    plateau_monitor: str = "val/loss",
) -> Any:
    """What a task's ``configure_optimizers`` returns.

    Args:
        module: The network whose parameters are optimised.
        optimizer: ``params -> Optimizer``; norm weights, biases and ``no_weight_decay()`` names are not decayed.
        lr_scheduler: ``optimizer -> LRScheduler``, or ``None`` for a constant rate; ``total_steps`` is filled in
            when the factory leaves it unset.
        interval: ``"step"`` or ``"epoch"``.
        total_steps: Returns the run's optimiser steps (``trainer.estimated_stepping_batches``); called only
            when there is a scheduler, so a task used without a trainer can still build its optimizer.
        layer_decay: Layer-wise learning-rate decay, or ``None``.
        plateau_monitor: Metric a ``ReduceLROnPlateau`` scheduler watches (stepped per epoch).
    """
    built = build_optimizer(optimizer, module, layer_decay)
    if lr_scheduler is None:
        return built
    scheduler = build_lr_scheduler(lr_scheduler, built, total_steps())
    config: dict[str, Any] = {"scheduler": scheduler, "interval": interval}
    if isinstance(scheduler, ReduceLROnPlateau):
        config.update(interval="epoch", monitor=plateau_monitor)
    return {"optimizer": built, "lr_scheduler": config}
