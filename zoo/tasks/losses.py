"""Classification losses for skewed classes: weighted cross-entropy and focal loss (Lin et al., 2017).

Focal loss multiplies each class's log-likelihood term by ``(1 - p)^gamma``, so examples the model already
gets right with confidence weigh less and the rare, hard ones more; per-class weights (``class_weights``) play
the role of the paper's alpha. With ``gamma = 0`` it is exactly torch's cross-entropy, weights and label
smoothing included (the tests check it), so the two can be compared with everything else equal.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from zoo.errors import ConfigError

__all__ = ["LOSSES", "balanced_weights", "classification_loss", "distillation_loss"]

LOSSES = ("cross_entropy", "focal")


def balanced_weights(counts: Sequence[int]) -> torch.Tensor:
    """``n / (C * count_c)`` per class (scikit-learn's "balanced"): every class weighs as much in total.

    Raises:
        ConfigError: When a class has no training example (its weight would be infinite).
    """
    counts_t = torch.as_tensor(list(counts), dtype=torch.float64)
    if (counts_t <= 0).any():
        empty = [c for c, n in enumerate(counts) if n <= 0]
        raise ConfigError(f"class_weights: balanced: class(es) {empty} have no training example")
    return (counts_t.sum() / (len(counts_t) * counts_t)).float()


def classification_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    loss: str = "cross_entropy",
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    gamma: float = 2.0,
) -> torch.Tensor:
    """The mean loss of ``logits`` ``(B, C)`` against class indices ``(B,)`` or probabilities ``(B, C)``.

    Args:
        logits: ``(B, C)`` class scores.
        targets: ``(B,)`` class indices or ``(B, C)`` probabilities.
        loss: ``cross_entropy`` or ``focal``.
        weight: ``(C,)`` per-class weights; as in torch, the mean over hard targets is weighted by them.
        label_smoothing: For hard targets, as in torch's ``cross_entropy``.
        gamma: The focal loss's focusing parameter (0: cross-entropy).
    """
    if loss == "cross_entropy":
        return F.cross_entropy(logits, targets, weight=weight, label_smoothing=label_smoothing)
    if loss != "focal":
        raise ConfigError(f"loss {loss!r}: choose one of {', '.join(LOSSES)}")
    log_p = F.log_softmax(logits.float(), dim=-1)
    terms = -((1 - log_p.exp()) ** gamma) * log_p  # (B, C): each class's focal term
    if weight is not None:
        terms = terms * weight
    if targets.is_floating_point():  # probabilities (mixup): as torch, the mean over the batch
        return (targets * terms).sum(-1).mean()
    chosen = terms.gather(1, targets[:, None]).squeeze(1)
    norm = weight[targets].sum() if weight is not None else torch.tensor(float(targets.numel()), device=logits.device)
    if label_smoothing == 0:
        return chosen.sum() / norm
    classes = logits.shape[-1]
    smooth = terms.sum(-1) / classes
    return ((1 - label_smoothing) * chosen.sum() + label_smoothing * smooth.sum()) / norm


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s (2015) soft-target loss: ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``.

    The ``T^2`` keeps the gradients' scale independent of the temperature, so that the weight between this and
    the hard-label loss means the same at any ``T``. Averaged over the batch.

    Args:
        student: Logits ``(B, C)``.
        teacher: Logits ``(B, C)``, without gradient.
        temperature: ``T > 0``; larger values expose more of the teacher's ranking of the wrong classes.
    """
    log_student = F.log_softmax(student.float() / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher.float() / temperature, dim=-1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True) * temperature**2
