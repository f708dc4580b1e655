"""Split parameters into a decayed and a non-decayed group."""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["param_groups_weight_decay"]


def param_groups_weight_decay(module: nn.Module) -> list[dict[str, Any]]:
    """Parameter groups that exempt norm weights, biases and declared parameters from weight decay.

    Decaying the scale of a normalisation layer or a bias only fights the optimiser: neither affects the
    model's capacity the way a weight matrix does, so (as in timm and most recipes) every parameter with at
    most one dimension gets ``weight_decay=0``. So do the names a module lists in ``no_weight_decay()``
    (timm's convention for position embeddings and class tokens). The decayed group carries no
    ``weight_decay`` key, so it keeps whatever the optimizer was configured with. Frozen parameters are left
    out.

    Args:
        module: The model whose trainable parameters are grouped.

    Returns:
        ``[{"params": decayed}, {"params": not_decayed, "weight_decay": 0.0}]``, omitting an empty group.
    """
    skip = set(module.no_weight_decay()) if hasattr(module, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim <= 1 or name in skip or name.split(".")[-1] in skip
        (no_decay if exempt else decay).append(param)
    groups: list[dict[str, Any]] = []
    if decay:
        groups.append({"params": decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
