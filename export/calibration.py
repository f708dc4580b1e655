"""Calibration inputs for static int8 quantization: what the task feeds its network on training batches.

Static quantization fixes each activation's int8 range from the values it takes on real data, so calibration
must see the network's inputs exactly as training prepared them (decoded, resized, normalised, on-device
transforms applied). Rather than knowing each task's batch layout, zoo runs the task's own
``logits_and_targets`` on training batches and records the arguments its ``backbone`` receives: the same
tensors, in the same order, that the exported artifact takes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from zoo.errors import DataError

__all__ = ["capture_calibration_inputs", "fingerprint"]


def capture_calibration_inputs(
    task: Any, data: Any, batches: int, seed: int = 0, split: str = "train"
) -> list[tuple[torch.Tensor, ...]]:
    """The backbone's inputs on the first ``batches`` batches of ``data``'s ``split``, on the CPU.

    Args:
        task: A zoo task whose ``logits_and_targets`` calls ``task.backbone``.
        data: The recipe's data module.
        batches: How many training batches to record (at least 1).
        seed: Seeds the global RNG before the loader is read, so that a shuffled split gives the same batches.
        split: ``"train"`` (calibration) or ``"val"`` (the drift reference of :mod:`export.reference`).

    Returns:
        One tuple of tensors per batch, in the artifact's input order (a missing attention mask becomes ones).

    Raises:
        DataError: When the training split gives no batches.
    """
    from lightning.pytorch.utilities import move_data_to_device

    torch.manual_seed(seed)
    data.prepare_data()
    data.setup("fit")
    device = next(task.parameters()).device
    captured: list[tuple[torch.Tensor, ...]] = []

    def record(_module: Any, args: tuple[Any, ...]) -> None:
        first = args[0]
        captured.append(tuple((torch.ones_like(first) if a is None else a).detach().cpu().contiguous() for a in args))

    handle = task.backbone.register_forward_pre_hook(record)
    try:
        with torch.inference_mode():
            for index, batch in enumerate(getattr(data, f"{split}_dataloader")()):
                if index >= batches:
                    break
                task.logits_and_targets(data.on_after_batch_transfer(move_data_to_device(batch, device), 0), "val")
    finally:
        handle.remove()
    if not captured:
        raise DataError(f"the {split} split of {type(data).__name__} gave no batches to record")
    return captured


def fingerprint(inputs: Sequence[tuple[torch.Tensor, ...]]) -> str:
    """SHA-256 (first 16 hex digits) of the calibration tensors' bytes: the same data gives the same value."""
    digest = hashlib.sha256()
    for batch in inputs:
        for tensor in batch:
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
