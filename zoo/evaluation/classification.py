"""A classifier's figures on one split: torchmetrics' values with seeded 95% bootstrap intervals.

The point values come from torchmetrics (accuracy, top-5, per-class precision, recall and F1, macro and weighted
F1, one-vs-rest AUROC and average precision, the confusion matrix, expected and maximum calibration error) and
from their definitions (negative log-likelihood, Brier score). Their intervals are percentile bootstrap
intervals: the test examples are resampled with replacement ``resamples`` times (seeded), every figure is
recomputed on each resample (:mod:`zoo.evaluation.weighted`, all resamples at once) and the interval is the
middle ``level`` of those values. Resampling examples treats them as independent draws: right for images and
texts, an approximation for the nodes of one graph.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from zoo.evaluation.weighted import BINS, SCALARS, weighted_metrics

__all__ = ["ClassificationReport", "Interval", "bootstrap_draws", "evaluate_classifier"]

_PER_CLASS = ("precision", "recall", "f1")


@dataclass(frozen=True)
class Interval:
    """A figure and its bootstrap interval ``[low, high]``."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        """``{"value", "low", "high"}``, rounded to 6 places."""
        return {key: round(getattr(self, key), 6) for key in ("value", "low", "high")}


@dataclass(frozen=True)
class ClassificationReport:
    """What :func:`evaluate_classifier` measured.

    Attributes:
        examples: Test examples scored.
        labels: Class names, by index (``"0"``, ``"1"``... when the data named none).
        metrics: Each scalar figure (see :data:`~zoo.evaluation.weighted.SCALARS`) with its interval.
        per_class: ``precision``, ``recall``, ``f1`` for each class, with intervals, and ``support``.
        confusion: Counts, ``confusion[true][predicted]``.
        reliability: Per confidence bin: its upper edge, the examples in it, their accuracy and mean confidence.
        resamples: Bootstrap resamples; ``seed``: their seed; ``level``: the intervals' coverage.
    """

    examples: int
    labels: tuple[str, ...]
    metrics: dict[str, Interval]
    per_class: list[dict[str, Any]]
    confusion: list[list[int]]
    reliability: list[dict[str, float]]
    resamples: int
    seed: int
    level: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``report.json``."""
        return {
            "examples": self.examples,
            "labels": list(self.labels),
            "metrics": {name: interval.as_dict() for name, interval in self.metrics.items()},
            "per_class": self.per_class,
            "confusion": self.confusion,
            "reliability": self.reliability,
            "bootstrap": {"resamples": self.resamples, "seed": self.seed, "level": self.level},
            **self.extra,
        }


def bootstrap_draws(
    probs: torch.Tensor,
    targets: torch.Tensor,
    resamples: int = 1000,
    seed: int = 0,
    chunk: int = 100,
    losses: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every figure on ``resamples`` bootstrap resamples of the examples: ``(resamples,)`` or ``(resamples, C)``.

    Resamples are drawn ``chunk`` at a time from a generator seeded with ``seed``, so the draws are the same on
    every machine and for every chunk size.
    """
    n = targets.shape[0]
    generator = torch.Generator().manual_seed(seed)
    draws: dict[str, list[torch.Tensor]] = {}
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        picks = torch.randint(0, n, (size, n), generator=generator)
        weights = torch.zeros(size, n, dtype=torch.float64).scatter_add_(
            1, picks, torch.ones(size, n, dtype=torch.float64)
        )
        for name, value in weighted_metrics(probs, targets, weights, losses).items():
            if name in (*SCALARS, *_PER_CLASS):
                draws.setdefault(name, []).append(value)
    return {name: torch.cat(values) for name, values in draws.items()}


def evaluate_classifier(
    logits: torch.Tensor,
    targets: torch.Tensor,
    labels: tuple[str, ...] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> ClassificationReport:
    """Every figure of a classifier's ``logits`` ``(N, C)`` against ``targets`` ``(N,)``, with intervals.

    Raises:
        ValueError: When the shapes disagree, a target is out of range, or there are no examples.
    """
    from torchmetrics.functional.classification import (
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    if logits.ndim != 2 or targets.ndim != 1 or logits.shape[0] != targets.shape[0] or targets.numel() == 0:
        raise ValueError(
            f"expected logits (N, C) and targets (N,), got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    n, classes = logits.shape
    if int(targets.min()) < 0 or int(targets.max()) >= classes:
        raise ValueError(
            f"targets must be class indices in [0, {classes}), got {int(targets.min())}..{int(targets.max())}"
        )
    probs = logits.double().softmax(1).float()
    targets = targets.long()
    present = [c for c in range(classes) if bool((targets == c).any()) and not bool((targets == c).all())]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No positive samples")  # absent classes are left out below
        point = _point_values(logits, probs, targets, classes, present)
    losses = torch.nn.functional.cross_entropy(logits.double(), targets, reduction="none")
    draws = bootstrap_draws(probs, targets, resamples, seed, losses=losses)
    tail = (1 - level) / 2

    def interval(value: torch.Tensor, samples: torch.Tensor) -> Interval:
        finite = samples[torch.isfinite(samples)]
        if finite.numel() == 0:
            return Interval(float(value), math.nan, math.nan)
        low, high = torch.quantile(finite.double(), torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
        return Interval(float(value), low, high)

    metrics = {name: interval(point[name], draws[name]) for name in SCALARS}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No positive samples")
        per_point = {
            "precision": multiclass_precision(probs, targets, classes, average="none"),
            "recall": multiclass_recall(probs, targets, classes, average="none"),
            "f1": multiclass_f1_score(probs, targets, classes, average="none"),
        }
    names = labels if labels is not None and len(labels) == classes else tuple(str(c) for c in range(classes))
    support = torch.bincount(targets, minlength=classes)
    per_class = [
        {"label": names[c], "support": int(support[c]),
         **{name: interval(per_point[name][c], draws[name][:, c]).as_dict() for name in _PER_CLASS}}
        for c in range(classes)
    ]  # fmt: skip
    confusion = multiclass_confusion_matrix(probs, targets, classes).tolist()
    unit = weighted_metrics(probs, targets, torch.ones(1, n))
    edges = torch.linspace(0, 1, BINS + 1)[1:].tolist()
    counts = unit["bin_count"][0].tolist()
    reliability = [
        {"upper": round(edges[k], 4), "count": int(counts[k]),
         "accuracy": float(unit["bin_accuracy"][0, k]) / counts[k] if counts[k] else math.nan,
         "confidence": float(unit["bin_confidence"][0, k]) / counts[k] if counts[k] else math.nan}
        for k in range(BINS)
    ]  # fmt: skip
    return ClassificationReport(n, names, metrics, per_class, confusion, reliability, resamples, seed, level)


def _point_values(
    logits: torch.Tensor, probs: torch.Tensor, targets: torch.Tensor, classes: int, present: list[int]
) -> dict[str, torch.Tensor]:
    """The point values from torchmetrics (ranking figures averaged over the classes with positives and negatives)."""
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_auroc,
        multiclass_average_precision,
        multiclass_calibration_error,
        multiclass_f1_score,
    )

    capped = probs.clamp_max(1.0 - 1e-6)  # an exact 1.0 falls into an extra bin in torchmetrics' binning
    ranked = torch.tensor(present, dtype=torch.long)
    return {
        "acc1": multiclass_accuracy(probs, targets, classes, average="micro"),
        "acc5": multiclass_accuracy(probs, targets, classes, average="micro", top_k=min(5, classes)),
        "f1_macro": multiclass_f1_score(probs, targets, classes, average="macro"),
        "f1_weighted": multiclass_f1_score(probs, targets, classes, average="weighted"),
        "auroc": multiclass_auroc(probs, targets, classes, average="none")[ranked].mean(),
        "average_precision": multiclass_average_precision(probs, targets, classes, average="none")[ranked].mean(),
        "ece": multiclass_calibration_error(capped, targets, classes, n_bins=BINS, norm="l1"),
        "mce": multiclass_calibration_error(capped, targets, classes, n_bins=BINS, norm="max"),
        "nll": torch.nn.functional.cross_entropy(logits.double(), targets),
        "brier": ((probs.double() - torch.nn.functional.one_hot(targets, classes)) ** 2).sum(1).mean(),
    }
