"""Learning-rate schedules stepped once per optimiser step."""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from typing_extensions import override

from zoo.errors import ConfigError

__all__ = ["WarmupCosineLR", "build_lr_scheduler"]


class WarmupCosineLR(LRScheduler):
    """Linear warm-up to the base learning rate, then a half-cosine decay to ``min_lr_ratio`` of it.

    At step ``t`` (0-based) the learning rate of each group is ``base_lr * f(t)`` with::

        f(t) = (t + 1) / W                                  for t < W
        f(t) = m + (1 - m) * (1 + cos(pi * p)) / 2,         p = min(1, (t - W) / (T - W))   otherwise

    where ``W`` is the number of warm-up steps, ``T`` the total and ``m`` the floor ratio. Parameter groups
    added to the optimizer later (as fine-tuning callbacks do when they unfreeze layers) follow the same curve
    from their ``initial_lr``.

    Args:
        optimizer: The wrapped optimizer.
        total_steps: Optimiser steps of the whole run. Tasks fill it from
            ``trainer.estimated_stepping_batches`` when a recipe leaves it unset (see
            :func:`build_lr_scheduler`).
        warmup_steps: Warm-up length in steps, or as a share of ``total_steps`` when below 1.
        min_lr_ratio: Final learning rate as a share of the base one.
        last_epoch: Index of the last step, for resuming (as in every torch scheduler).

    Raises:
        ValueError: If ``total_steps`` is missing or not positive, or the warm-up is negative. A warm-up longer
            than the run is shortened to the run, with a warning.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int | None = None,
        warmup_steps: float = 0,
        min_lr_ratio: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if total_steps is None or total_steps < 1 or not math.isfinite(total_steps):
            raise ConfigError(
                f"WarmupCosineLR needs a finite total_steps >= 1, got {total_steps}: set it, or set "
                "trainer.max_epochs/max_steps so the task can fill it in"
            )
        warmup = round(warmup_steps * total_steps) if 0 < warmup_steps < 1 else int(warmup_steps)
        if warmup < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if warmup > total_steps:  # e.g. a recipe shortened with --trainer.max_steps for a quick check
            warnings.warn(
                f"warmup_steps={warmup} exceeds total_steps={total_steps}: warming up over the whole run",
                stacklevel=2,
            )
            warmup = int(total_steps)
        if not 0 <= min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        self.total_steps = int(total_steps)
        self.warmup_steps = warmup
        self.min_lr_ratio = min_lr_ratio
        super().__init__(optimizer, last_epoch)

    def lr_factor(self, step: int) -> float:
        """Multiplier ``f(step)`` applied to every base learning rate."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    @override
    def get_lr(self) -> list[float]:
        # Groups added after construction (e.g. a backbone unfrozen for fine-tuning) join the schedule from
        # their ``initial_lr``, or, without one, as if their current rate were this step's point on the curve.
        factor = self.lr_factor(self.last_epoch)
        for group in self.optimizer.param_groups[len(self.base_lrs) :]:
            group.setdefault("initial_lr", group["lr"] / factor if factor > 0 else group["lr"])
            self.base_lrs.append(group["initial_lr"])
        return [base_lr * factor for base_lr in self.base_lrs]


def build_lr_scheduler(
    factory: Callable[..., LRScheduler], optimizer: Optimizer, total_steps: int | float
) -> LRScheduler:
    """Call a scheduler factory, supplying ``total_steps`` when the factory left it unset.

    LightningCLI turns a recipe's ``lr_scheduler`` into a ``functools.partial`` holding every init argument,
    ``total_steps=None`` included when the recipe does not set it (as for ``WarmupCosineLR`` and torch's
    ``OneCycleLR``). Only the trainer knows the run's length, so the task passes it here. A factory from
    library code (the class itself, or a partial without ``total_steps``) gets it when its signature takes it.

    Args:
        factory: ``optimizer -> scheduler`` callable: a scheduler class or a partial of one.
        optimizer: The optimizer to schedule.
        total_steps: Optimiser steps of the run (``trainer.estimated_stepping_batches``).

    Returns:
        The scheduler.
    """
    keywords: dict[str, Any] = factory.keywords if isinstance(factory, partial) else {}
    if "total_steps" in keywords:
        supply = keywords["total_steps"] is None
    else:
        target = factory.func if isinstance(factory, partial) else factory
        try:
            supply = "total_steps" in inspect.signature(target).parameters
        except (TypeError, ValueError):  # builtins and C callables have no signature
            supply = False
    if supply:
        return factory(optimizer, total_steps=int(total_steps) if math.isfinite(total_steps) else None)
    return factory(optimizer)
