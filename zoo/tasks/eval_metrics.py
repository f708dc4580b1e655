"""Figures a recipe can log during validation and test beside accuracy (``metrics: [f1_macro, auroc, ece]``).

The same definitions as ``zoo evaluate`` (torchmetrics'; ECE over 15 bins with confidences capped below 1.0),
logged each epoch as ``val/<name>`` and ``test/<name>``, so they reach TensorBoard and MLflow like the loss.
AUROC and average precision keep every prediction of the epoch (``N x C`` floats), the others running counts.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.classification import (
    MulticlassAUROC,
    MulticlassAveragePrecision,
    MulticlassCalibrationError,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from typing_extensions import override

from zoo.errors import ConfigError

__all__ = ["EXTRA_METRICS", "CappedCalibrationError", "check_metric_names", "extra_metrics"]

EXTRA_METRICS = ("f1_macro", "precision_macro", "recall_macro", "auroc", "average_precision", "ece")


class CappedCalibrationError(MulticlassCalibrationError):
    """torchmetrics' ECE, with the confidences capped just below 1.0.

    torchmetrics bins with ``bucketize(..., right=True)`` over ``n_bins + 1`` slots, so a confidence of exactly
    1.0 (common in float32 for a confident network) lands in an extra bin of its own.
    """

    @override
    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        probs = preds.float().softmax(-1) if preds.min() < 0 or preds.max() > 1 else preds.float()
        super().update(probs.clamp_max(1.0 - 1e-6), target)


def check_metric_names(names: list[str] | None) -> list[str]:
    """The names, checked against :data:`EXTRA_METRICS`.

    Raises:
        ConfigError: Naming the unknown metric and the choices.
    """
    unknown = [name for name in names or [] if name not in EXTRA_METRICS]
    if unknown:
        raise ConfigError(f"metrics {unknown}: choose from {', '.join(EXTRA_METRICS)}")
    return list(names or [])


def extra_metrics(names: list[str], num_classes: int) -> dict[str, Metric]:
    """The torchmetrics objects of ``names`` for ``num_classes`` classes."""
    makers: dict[str, Any] = {
        "f1_macro": lambda: MulticlassF1Score(num_classes, average="macro"),
        "precision_macro": lambda: MulticlassPrecision(num_classes, average="macro"),
        "recall_macro": lambda: MulticlassRecall(num_classes, average="macro"),
        "auroc": lambda: MulticlassAUROC(num_classes),
        "average_precision": lambda: MulticlassAveragePrecision(num_classes),
        "ece": lambda: CappedCalibrationError(num_classes, n_bins=15),
    }
    return {name: makers[name]() for name in names}
