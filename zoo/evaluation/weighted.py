"""Classification metrics of many weightings of one set of predictions at once: the bootstrap's engine.

A bootstrap resample of ``N`` test examples is a vector of ``N`` counts (how often each example was drawn), so
``B`` resamples are a ``(B, N)`` weight matrix, and every metric here is computed for all ``B`` rows with a few
matrix products, scatters and cumulative sums. With unit weights (``B = 1``) the values are the plain metrics,
equal to torchmetrics' (the tests check it). One torchmetrics pass over 10,000 CIFAR-10 predictions takes about
80 ms on a 2-core CPU, so 1,000 resamples would take over a minute; this takes a few seconds. Why zoo computes
these itself is in ``docs/pages/own-code.md``.

Shapes: ``probs`` ``(N, C)`` rows summing to 1, ``targets`` ``(N,)`` class indices, ``weights`` ``(B, N)``
non-negative. Every result is ``(B,)`` or ``(B, C)``.
"""

from __future__ import annotations

import torch

__all__ = ["BINS", "SCALARS", "weighted_metrics"]

BINS = 15  # calibration bins, as torchmetrics' default and the calibration literature (Guo et al. 2017)
SCALARS = ("acc1", "acc5", "f1_macro", "f1_weighted", "auroc", "average_precision", "ece", "mce", "nll", "brier")
_CONFIDENCE_CAP = 1.0 - 1e-6  # an exact 1.0 would fall into an extra bin in torchmetrics' binning


def weighted_metrics(
    probs: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, losses: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Every metric for each row of ``weights``.

    Args:
        probs: ``(N, C)`` class probabilities.
        targets: ``(N,)`` class indices.
        weights: ``(B, N)`` how often each example counts in each of ``B`` weightings.
        losses: ``(N,)`` each example's negative log-likelihood, computed from the logits (exact where a
            probability underflows); by default ``-log`` of the target's probability, floored at 1e-12.

    Returns:
        ``acc1``, ``acc5`` (top-5, or top-C with fewer classes), ``f1_macro``, ``f1_weighted``, ``auroc`` and
        ``average_precision`` (one-vs-rest, averaged over the classes that have positives and negatives),
        ``ece`` and ``mce`` (15 equal-width confidence bins), ``nll`` (mean negative log-likelihood, nats),
        ``brier`` (mean over examples of the squared distance between the probabilities and the one-hot
        target, from 0 to 2), each ``(B,)``; ``precision``, ``recall``, ``f1``, ``support`` per class,
        ``(B, C)``; and ``confusion`` ``(B, C, C)`` (rows: true class, columns: predicted).
    """
    probs, weights = probs.double(), weights.double()
    classes = probs.shape[1]
    total = weights.sum(1)
    predicted = probs.argmax(1)
    correct = (predicted == targets).double()
    top = probs.topk(min(5, classes), dim=1).indices
    in_top = (top == targets[:, None]).any(1).double()
    chosen = probs.gather(1, targets[:, None]).squeeze(1)
    onehot = torch.nn.functional.one_hot(targets, classes).double()
    out = {
        "acc1": weights @ correct / total,
        "acc5": weights @ in_top / total,
        "nll": weights @ (-chosen.clamp_min(1e-12).log() if losses is None else losses.double()) / total,
        "brier": weights @ ((probs - onehot) ** 2).sum(1) / total,
    }
    out.update(_confusion_metrics(predicted, targets, weights, classes))
    out.update(_calibration(probs, correct, weights, total))
    out.update(_ranking(probs, targets, weights))
    return out


def _confusion_metrics(
    predicted: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, classes: int
) -> dict[str, torch.Tensor]:
    cells = torch.zeros(weights.shape[0], classes * classes, dtype=weights.dtype)
    cells.index_add_(1, targets * classes + predicted, weights)
    confusion = cells.view(-1, classes, classes)
    hits = confusion.diagonal(dim1=1, dim2=2)
    support, claimed = confusion.sum(2), confusion.sum(1)
    precision = torch.where(claimed > 0, hits / claimed.clamp_min(1e-12), 0.0)
    recall = torch.where(support > 0, hits / support.clamp_min(1e-12), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-12), 0.0)
    return {
        "confusion": confusion,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "f1_macro": f1.mean(1),
        "f1_weighted": (f1 * support).sum(1) / support.sum(1),
    }


def _calibration(
    probs: torch.Tensor, correct: torch.Tensor, weights: torch.Tensor, total: torch.Tensor
) -> dict[str, torch.Tensor]:
    """ECE and MCE over ``BINS`` bins ``(k/15, (k+1)/15]`` of the top probability, as torchmetrics bins them."""
    confidence = probs.max(1).values.clamp_max(_CONFIDENCE_CAP)
    edges = torch.linspace(0, 1, BINS + 1, dtype=probs.dtype)
    bins = (torch.bucketize(confidence, edges, right=True) - 1).clamp(0, BINS - 1)
    member = torch.nn.functional.one_hot(bins, BINS).double()
    count = weights @ member
    hits = weights @ (member * correct[:, None])
    sure = weights @ (member * confidence[:, None])
    gap = (hits - sure).abs()
    per_bin = torch.where(count > 0, gap / count.clamp_min(1e-12), 0.0)
    return {"ece": gap.sum(1) / total, "mce": per_bin.max(1).values, "bin_count": count, "bin_accuracy": hits,
            "bin_confidence": sure}  # fmt: skip


def _ranking(probs: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """One-vs-rest AUROC and average precision, ties counted as half (AUROC) and as one threshold (AP)."""
    aurocs, precisions = [], []
    for c in range(probs.shape[1]):
        positive = targets == c
        if positive.all() or not positive.any():
            continue
        scores, order = probs[:, c].sort(descending=True)
        _, group = torch.unique_consecutive(scores, return_inverse=True)
        groups = int(group.max()) + 1
        w = weights[:, order]
        pos = torch.zeros(weights.shape[0], groups, dtype=w.dtype).index_add_(1, group, w * positive[order])
        neg = torch.zeros(weights.shape[0], groups, dtype=w.dtype).index_add_(1, group, w * ~positive[order])
        all_pos, all_neg = pos.sum(1), neg.sum(1)
        above = pos.cumsum(1) - pos
        aurocs.append((neg * (above + pos / 2)).sum(1) / (all_pos * all_neg).clamp_min(1e-12))
        true_pos, seen = pos.cumsum(1), (pos + neg).cumsum(1)
        precision = torch.where(seen > 0, true_pos / seen.clamp_min(1e-12), 0.0)
        precisions.append((pos * precision).sum(1) / all_pos.clamp_min(1e-12))
    if not aurocs:
        nan = torch.full((weights.shape[0],), float("nan"), dtype=weights.dtype)
        return {"auroc": nan, "average_precision": nan}
    return {"auroc": torch.stack(aurocs, 1).mean(1), "average_precision": torch.stack(precisions, 1).mean(1)}
