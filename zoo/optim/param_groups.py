"""Split parameters into a decayed and a non-decayed group."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import nn
from torch.optim import Optimizer

from zoo.errors import ConfigError

__all__ = ["build_optimizer", "param_groups_layer_decay", "param_groups_weight_decay"]

_OPTIMIZER_DEFAULT = 1.0  # stands for "the optimizer's own weight decay" while timm builds the groups


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


def param_groups_layer_decay(module: nn.Module, layer_decay: float) -> list[dict[str, Any]]:
    """Groups for layer-wise learning-rate decay (BEiT, as in timm), with the weight-decay split above.

    The layer ``l`` of ``L`` (stem first, head last, from timm's ``group_matcher``) learns at ``lr_scale =
    layer_decay ** (L - 1 - l)`` times the base rate: fine-tuning moves early, general features less than
    the head. Apply the scale with :func:`build_optimizer`.

    Args:
        module: A model with timm's ``group_matcher`` (every timm model and the zoo models built on timm).
        layer_decay: Ratio between the rates of consecutive layers, in (0, 1].

    Returns:
        timm's groups, each with ``lr_scale``; decayed groups carry no ``weight_decay`` key.

    Raises:
        ValueError: If ``layer_decay`` is out of range or the model cannot be split into layers.
    """
    from timm.optim import param_groups_layer_decay as timm_layer_groups

    if not 0 < layer_decay <= 1:
        raise ConfigError(f"layer_decay must be in (0, 1], got {layer_decay}")
    if not hasattr(module, "group_matcher"):
        raise ConfigError(
            f"layer_decay needs a model that splits into layers with timm's group_matcher(); "
            f"{type(module).__name__} has none"
        )
    skip = tuple(module.no_weight_decay()) if hasattr(module, "no_weight_decay") else ()
    groups = timm_layer_groups(
        module, weight_decay=_OPTIMIZER_DEFAULT, no_weight_decay_list=skip, layer_decay=layer_decay
    )
    for group in groups:
        if group["weight_decay"] == _OPTIMIZER_DEFAULT:
            del group["weight_decay"]
    return groups


def build_optimizer(
    factory: Callable[[Iterable[dict[str, Any]]], Optimizer], module: nn.Module, layer_decay: float | None = None
) -> Optimizer:
    """Create the optimizer over ``module``'s groups and apply each group's ``lr_scale`` to its rate.

    Scaling the group rates before any scheduler is created makes every torch scheduler, which multiplies
    each group's initial rate, keep the layer-wise ratios.
    """
    if layer_decay is None:
        return factory(param_groups_weight_decay(module))
    optimizer = factory(param_groups_layer_decay(module, layer_decay))
    for group in optimizer.param_groups:
        group["lr"] *= group.get("lr_scale", 1.0)
    return optimizer
