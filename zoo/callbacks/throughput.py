"""Training and validation throughput, with FLOP/s and utilisation where the model's FLOPs are known."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ThroughputMonitor as LightningThroughputMonitor
from typing_extensions import override

__all__ = ["ThroughputMonitor"]


class ThroughputMonitor(LightningThroughputMonitor):
    """Lightning's ``ThroughputMonitor`` with zoo's defaults: samples/s always, FLOP/s and MFU when known.

    Logs ``train/device/samples_per_sec`` and ``batches_per_sec`` (and ``validate/...``), plus the totals over
    all devices (``train/samples_per_sec``) when there are several. When the task counts its FLOPs
    (``training_flops(batch)`` of the task contract; image classifiers, language models and diffusion models
    trace one step of a meta-device copy of their backbone with ``torch.utils.flop_counter``), it also logs
    ``device/flops_per_sec`` and, on GPUs whose peak Lightning knows (A100, H100, ...), ``device/mfu``: achieved
    over peak FLOP/s at the training precision. Lightning's own callback needs a ``batch_size_fn`` and a
    ``flops_per_batch`` attribute the user computes; this one asks the task (``count_samples(batch)``; the
    leading size of the batch's first tensor for other modules).

    Args:
        window_size: Number of batches the rates are averaged over.
        measure_flops: Ask the task for its FLOPs on the first training batch.
    """

    def __init__(self, window_size: int = 50, measure_flops: bool = True) -> None:
        super().__init__(batch_size_fn=_leading_size, window_size=window_size)
        self.measure_flops = measure_flops

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        count = getattr(pl_module, "count_samples", None)
        if count is not None:
            self.batch_size_fn = lambda batch: int(count(batch))
        super().setup(trainer, pl_module, stage)

    @override
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.measure_flops and not hasattr(pl_module, "flops_per_batch") and hasattr(pl_module, "training_flops"):
            flops = pl_module.training_flops(batch)
            if flops is not None:
                pl_module.flops_per_batch = flops


def _leading_size(batch: Any) -> int:
    if isinstance(batch, dict):
        batch = next(iter(batch.values()))
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return int(first.shape[0])
