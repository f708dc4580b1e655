"""FLOPs of a training step, counted on the meta device."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["meta_training_flops"]


def meta_training_flops(
    module: nn.Module,
    make_inputs: Callable[[], tuple[torch.Tensor | None, ...] | None],
    make_model: Callable[[], nn.Module] | None = None,
) -> int:
    """Forward and backward FLOPs of ``module`` on the inputs ``make_inputs()`` builds on the meta device.

    ``torch.utils.flop_counter`` runs on a meta-device copy, so nothing is computed or allocated on the real
    device; ``zoo.callbacks.ThroughputMonitor`` and the benchmarks use the count for FLOP/s and utilisation.

    Args:
        module: The network (left untouched).
        make_inputs: Builds its positional inputs; called under ``torch.device("meta")``.
        make_model: Builds the same network afresh; called under ``torch.device("meta")`` instead of copying
            ``module`` (a compiled module cannot be deep-copied).
    """
    from lightning.fabric.utilities.throughput import measure_flops

    if make_model is not None:
        with torch.device("meta"):
            model = make_model()
    else:
        model = copy.deepcopy(module).to("meta")
    with torch.device("meta"):
        inputs = make_inputs() or ()
    return int(measure_flops(model, lambda: model(*inputs), loss_fn=torch.Tensor.sum))
