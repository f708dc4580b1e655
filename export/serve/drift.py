"""Input drift: the features of what a model sees, compared with what it saw on its validation data.

Per input the features are cheap summaries (per-channel mean and standard deviation of an image's pixels in
``[0, 1]``, a text's token count) plus the model's top-class confidence. ``zoo export`` records their
reference distribution on the validation split as decile bins (``reference_from_samples``); the server keeps
the last ``window`` inputs and scores each feature with the population-stability index

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

over those bins (``e`` the reference share, ``a`` the window's). By the usual reading, below 0.1 is no shift,
0.1-0.25 a moderate one, above 0.25 a shift worth a look; with ``n`` inputs in the window and 10 bins, sampling
alone gives about ``9 / n``, so no score is given before ``min_samples`` inputs.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["DriftMonitor", "input_features", "reference_from_samples"]

log = logging.getLogger(__name__)
_EPSILON = 1e-4


def input_features(preprocessing: Any, inputs: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-input features ``{name: (N,)}`` of a model's prepared inputs (those the network takes, in order).

    Args:
        preprocessing: The signature's preprocessing (``ImageInput`` or ``TextInput``; others give none).
        inputs: Image batch ``(N, C, H, W)`` normalised with the preprocessing's mean and std, or
            ``(input_ids, attention_mask)`` ``(N, L)`` each.
    """
    kind = getattr(preprocessing, "kind", None)
    if kind == "image":
        images = inputs[0].float()
        channels = images.shape[1]
        mean = torch.tensor(preprocessing.mean or (0.0,) * channels).view(1, -1, 1, 1)
        std = torch.tensor(preprocessing.std or (1.0,) * channels).view(1, -1, 1, 1)
        std_, mean_ = torch.std_mean((images * std + mean).flatten(2), dim=2)  # (N, C) each, in one pass
        columns = torch.cat([mean_, std_], dim=1).T  # one tensor per feature without a per-channel loop
        names = [f"channel{c}_mean" for c in range(channels)] + [f"channel{c}_std" for c in range(channels)]
        return dict(zip(names, columns, strict=True))
    if kind == "text":
        mask = inputs[1] if len(inputs) > 1 else torch.ones_like(inputs[0])
        return {"tokens": mask.sum(dim=1).float()}
    return {}


def reference_from_samples(samples: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """The reference the server compares with: per feature, decile edges and the share of samples per bin.

    Args:
        samples: ``{feature: (N,)}`` over the reference data.
        source: Where the samples came from, for the metadata (split, batches, count).
    """
    features = {}
    for name, values in samples.items():
        values = values.double()
        edges = torch.unique(torch.quantile(values, torch.linspace(0.1, 0.9, 9, dtype=torch.float64)))
        counts = torch.bincount(torch.bucketize(values, edges), minlength=len(edges) + 1).double()
        features[name] = {"edges": edges.tolist(), "proportions": (counts / counts.sum()).tolist()}
    count = len(next(iter(samples.values()))) if samples else 0
    return {"source": source, "samples": count, "statistic": "psi", "features": features}


def psi(expected: Sequence[float], actual: torch.Tensor) -> float:
    """Population-stability index of ``actual`` shares against ``expected`` ones (same bins)."""
    e = torch.tensor(expected, dtype=torch.float64).clamp_min(_EPSILON)
    a = actual.double().clamp_min(_EPSILON)
    return float(((a - e) * torch.log(a / e)).sum())


class DriftMonitor:
    """The last ``window`` inputs' features, scored against the reference.

    Each feature's window keeps the bin of every recent input and the count per bin, updated as inputs come
    and go, so a score costs the number of bins, not the window's length.

    Args:
        reference: ``metadata["drift_reference"]`` written by ``zoo export``.
        window: How many recent inputs are compared.
        min_samples: No score before this many inputs (at most ``window``; sampling noise alone is about ``9 / n``).
        threshold: A score above it logs a warning (once per crossing).
    """

    def __init__(
        self, reference: Mapping[str, Any], window: int = 512, min_samples: int = 200, threshold: float = 0.25
    ) -> None:
        self.reference = dict(reference["features"])
        self.edges = {name: torch.tensor(f["edges"], dtype=torch.float64) for name, f in self.reference.items()}
        self.bins: dict[str, deque[int]] = {name: deque() for name in self.reference}
        self.counts = {name: [0] * (len(f["edges"]) + 1) for name, f in self.reference.items()}
        self.window = window
        self.min_samples = min(min_samples, window)
        self.threshold = threshold
        self._alarm = False

    def update(self, features: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Add a batch's features; the scores ``{feature: PSI}`` (empty while the window is short)."""
        for name, values in features.items():
            if name not in self.bins:
                continue
            bins, counts = self.bins[name], self.counts[name]
            for index in torch.bucketize(values.double(), self.edges[name]).tolist():
                if len(bins) == self.window:
                    counts[bins.popleft()] -= 1
                bins.append(index)
                counts[index] += 1
        scores = self.scores()
        worst = max(scores.values(), default=0.0)
        if worst > self.threshold and not self._alarm:
            feature = max(scores, key=scores.__getitem__)
            log.warning("input drift: %s has PSI %.3f over the last %d inputs (threshold %.2f)",
                        feature, worst, len(self.bins[feature]), self.threshold)  # fmt: skip
        self._alarm = worst > self.threshold
        return scores

    def scores(self) -> dict[str, float]:
        """PSI per feature over the window, once it holds ``min_samples`` inputs."""
        scores = {}
        for name, stored in self.reference.items():
            seen = len(self.bins[name])
            if seen < self.min_samples:
                continue
            shares = torch.tensor(self.counts[name], dtype=torch.float64) / seen
            scores[name] = psi(stored["proportions"], shares)
        return {name: value for name, value in scores.items() if math.isfinite(value)}
