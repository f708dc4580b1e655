"""Which weights to prune: magnitude masks, unstructured or over whole channels, and removing pruned channels.

Masks are boolean tensors keyed by the backbone's state-dict names (``True`` keeps a weight). They are
applied in place, so a pruned network is an ordinary network whose pruned weights are zero: its checkpoints
keep their keys and load anywhere, and sparsity survives EMA, export and resuming.

* **Unstructured**: the smallest-magnitude weights of every convolution and linear layer (biases, norms and
  the classifier head are left dense), ranked globally across layers, so that layers with more redundant
  weights give up more.
* **Structured**: whole output channels. Channels that must go together (the two sides of a residual
  addition, a convolution and its BatchNorm, the next layer's inputs) form a group in Torch-Pruning's
  dependency graph; each group loses the same fraction of its channels, ranked by the group's L2 magnitude
  across all its members, and a pruned channel is zeroed in every member (convolution or linear weights and
  bias, BatchNorm weight and bias). Its output is then exactly zero, so :func:`remove_pruned_channels` can cut
  the channels out physically without changing what the network computes: the exported model is smaller and
  needs fewer FLOPs, instead of multiplying zeros.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from zoo.errors import ConfigError, MissingExtraError

__all__ = [
    "apply_masks",
    "example_inputs_of",
    "mask_sparsity",
    "remove_pruned_channels",
    "structured_masks",
    "unstructured_masks",
]

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_CHANNEL_MEMBERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.modules.batchnorm._BatchNorm)


def example_inputs_of(task: Any, **sizes: int) -> tuple[torch.Tensor, ...]:
    """A zoo task's example inputs at its signature's example sizes (``sizes`` override some), on its device.

    What the channel groups are traced with and the FLOPs are counted on.
    """
    wanted = {**dict(task.inference_signature().example_sizes), **sizes}
    device = next(task.parameters()).device
    return tuple(t.to(device) for t in task.example_inputs(wanted, torch.Generator().manual_seed(0)))


def _classifier_head(module: nn.Module) -> nn.Module | None:
    """The last convolution or linear layer: the head, whose outputs are the classes and stay whole."""
    layers = [m for m in module.modules() if isinstance(m, _WEIGHTED)]
    return layers[-1] if layers else None


def _prunable_weights(module: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    head = _classifier_head(module)
    for name, layer in module.named_modules():
        if isinstance(layer, _WEIGHTED) and layer is not head:
            yield f"{name}.weight" if name else "weight", layer.weight


@torch.no_grad()
def unstructured_masks(module: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Masks that zero the ``sparsity`` fraction of smallest-magnitude weights, ranked across all layers.

    Weights already zero rank first, so raising the sparsity step by step only adds to what was pruned.

    Raises:
        ValueError: For a sparsity outside ``[0, 1)``, or a module with no convolution or linear layer to prune.
    """
    check_sparsity(sparsity)
    weights = dict(_prunable_weights(module))
    if not weights:
        raise ConfigError(f"{type(module).__name__} has no convolution or linear layer (apart from its head) to prune")
    magnitudes = torch.cat([w.detach().abs().flatten().float() for w in weights.values()])
    count = int(sparsity * magnitudes.numel())
    if count == 0:
        return {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
    # Rank by magnitude, ties by position, so that exactly `count` weights go even when many are equal.
    order = torch.argsort(magnitudes, stable=True)
    keep = torch.ones_like(magnitudes, dtype=torch.bool)
    keep[order[:count]] = False
    masks, start = {}, 0
    for name, weight in weights.items():
        masks[name] = keep[start : start + weight.numel()].view_as(weight).to(weight.device)
        start += weight.numel()
    return masks


def check_sparsity(sparsity: float) -> None:
    """Refuse a sparsity outside ``[0, 1)``: pruning every weight leaves no network."""
    if not 0 <= sparsity < 1:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")


def _torch_pruning() -> Any:
    try:
        import torch_pruning
    except ImportError:
        raise MissingExtraError(
            'structured pruning needs Torch-Pruning: pip install "lightning-zoo[compress]"'
        ) from None
    return torch_pruning


def _channel_groups(module: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> tuple[Any, list[Any]]:
    """Torch-Pruning's dependency graph of ``module`` and its groups rooted at convolutions (head excluded)."""
    tp = _torch_pruning()
    if any(isinstance(m, nn.LayerNorm | nn.MultiheadAttention) for m in module.modules()):
        raise ConfigError(
            f"structured pruning removes the channels of convolutional networks; {type(module).__name__} is a "
            "transformer, whose channels run through every block: prune it unstructured"
        )
    training = module.training
    module.eval()  # tracing must not move BatchNorm's running statistics
    try:
        with torch.enable_grad():  # the graph is traced through autograd
            graph = tp.DependencyGraph().build_dependency(module, example_inputs=example_inputs)
    finally:
        module.train(training)
    head = _classifier_head(module)
    groups = list(
        graph.get_all_groups(ignored_layers=[head] if head is not None else [], root_module_types=[nn.Conv2d])
    )
    if not groups:
        raise ConfigError(
            f"structured pruning removes convolution channels; {type(module).__name__} has none to remove "
            "(prune it unstructured)"
        )
    return graph, groups


def _members(graph: Any, group: Any, names: Mapping[nn.Module, str]) -> Iterator[tuple[str, nn.Module, list[int]]]:
    """``(name, layer, output channels)`` of each layer of ``group`` that holds the group's output channels."""
    for dep, idxs in group:
        layer = dep.target.module
        if isinstance(layer, _CHANNEL_MEMBERS) and graph.is_out_channel_pruning_fn(dep.handler):
            yield names[layer], layer, [int(i) for i in idxs]


def structured_masks(
    module: nn.Module, sparsity: float, example_inputs: tuple[torch.Tensor, ...]
) -> dict[str, torch.Tensor]:
    """Masks that zero the ``sparsity`` fraction of each channel group's lowest-magnitude output channels.

    Args:
        module: The backbone (in eval mode for tracing; its weights are only read).
        sparsity: Fraction of channels to prune in every group; at least one channel of each stays.
        example_inputs: Inputs the backbone accepts, to trace its dependency graph.

    Raises:
        ValueError: For a sparsity outside ``[0, 1)`` or a network without convolution channels.
        ImportError: Without Torch-Pruning.
    """
    check_sparsity(sparsity)
    tp = _torch_pruning()
    graph, groups = _channel_groups(module, example_inputs)
    names = {layer: name for name, layer in module.named_modules()}
    importance = tp.importance.GroupMagnitudeImportance(p=2)
    masks: dict[str, torch.Tensor] = {}
    for group in groups:
        with torch.no_grad():
            scores = importance(group)
        if scores is None:
            continue
        count = _channels_to_prune(scores.numel(), sparsity)
        pruned = set(torch.argsort(scores, stable=True)[:count].tolist())
        root = group[0].dep
        mapped = graph.get_pruning_group(root.target.module, root.handler, idxs=sorted(pruned)) if pruned else None
        for name, layer, idxs in _members(graph, mapped, names) if mapped is not None else ():
            for kind in ("weight", "bias"):
                tensor = getattr(layer, kind, None)
                if tensor is None:
                    continue
                key = f"{name}.{kind}"
                mask = masks.setdefault(key, torch.ones_like(tensor, dtype=torch.bool))
                mask[idxs] = False
    return masks


ROUND_TO = 8  # channels kept per group: a multiple of this (CPU kernels work in blocks of 8 or 16 channels)


def _channels_to_prune(channels: int, sparsity: float) -> int:
    """How many of a group's ``channels`` to prune: ``sparsity`` of them, keeping a multiple of :data:`ROUND_TO`.

    Convolution kernels on CPUs (oneDNN's, onnxruntime's NCHWc) process channels in blocks of 8 or 16, so a
    layer left with, say, 154 channels runs about as slowly as one with 160 and sometimes slower than one with
    256; rounding the kept channels up keeps every pruned network on the fast path. At least one channel stays.
    """
    keep = channels - int(sparsity * channels)
    if channels >= ROUND_TO:
        keep = min(channels, -(-keep // ROUND_TO) * ROUND_TO)
    return max(0, min(channels - keep, channels - 1))


@torch.no_grad()
def apply_masks(state: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the pruned entries of the tensors in ``state`` (a module's state dict, or an EMA average)."""
    for name, mask in masks.items():
        tensor = state.get(name)
        if tensor is not None:
            tensor.mul_(mask.to(tensor.device))


def mask_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """The fraction of masked entries over all masked tensors (0.0 for no masks)."""
    total = sum(mask.numel() for mask in masks.values())
    return 0.0 if total == 0 else 1 - sum(int(mask.sum()) for mask in masks.values()) / total


def remove_pruned_channels(module: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> int:
    """Cut out, in place, every output channel that is zero in all layers of its group; the count removed.

    A channel is removed only when its convolution or linear weights and bias and its BatchNorm weight and
    bias are all exactly zero in every member of its group: its output is then zero, so the smaller network
    computes the same function. Channels structured pruning never touched are left alone.

    Raises:
        ImportError: Without Torch-Pruning.
    """
    graph, groups = _channel_groups(module, example_inputs)
    names = {layer: name for name, layer in module.named_modules()}
    removed = 0
    for group in groups:
        zero: torch.Tensor | None = None
        width = len(group[0].idxs)
        for _name, layer, idxs in _members(graph, group, names):
            if len(idxs) != width:  # a member holding a slice of a concatenation: leave the group whole
                zero = None
                break
            for kind in ("weight", "bias"):
                tensor = getattr(layer, kind, None)
                if tensor is None:
                    continue
                rows = tensor.detach()[idxs].reshape(len(idxs), -1)
                channel_zero = (rows == 0).all(dim=1).cpu()
                zero = channel_zero if zero is None else zero & channel_zero
        if zero is None:
            continue
        channels = torch.nonzero(zero).flatten().tolist()[: max(0, zero.numel() - 1)]
        if channels:
            root = group[0].dep
            with torch.no_grad():
                graph.get_pruning_group(root.target.module, root.handler, idxs=channels).prune()
            removed += len(channels)
    return removed
