"""Temperature scaling (Guo et al. 2017): one number that makes a classifier's probabilities honest.

The logits are divided by a temperature ``T`` fitted on the validation split by minimising the negative
log-likelihood (LBFGS on ``log T``, so ``T`` stays positive). Accuracy cannot change (the order of the logits is
kept); the expected calibration error usually drops. The fitted copy of the checkpoint carries ``T`` in its
metadata (``zoo_metadata["calibration"]``): the task divides by it in ``predict_step`` and ``zoo export``
records it in the artifact's metadata. The user's checkpoint is never rewritten.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["fit_temperature", "write_calibrated_checkpoint"]


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, max_iter: int = 200) -> float:
    """The temperature minimising the NLL of ``softmax(logits / T)`` on ``targets`` (``logits`` ``(N, C)``)."""
    logits, targets = logits.detach().double(), targets.long()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    with torch.enable_grad():  # callers may be in inference mode, which blocks the gradient
        optimizer.step(closure)
    return float(log_t.detach().exp())


def write_calibrated_checkpoint(source: Path, target: Path, calibration: dict[str, Any]) -> Path:
    """Copy ``source`` to ``target`` with ``calibration`` (``temperature`` and how it was fitted) in its metadata.

    Raises:
        UsageError: When ``target`` is ``source`` (the user's checkpoint is not rewritten in place).
    """
    from zoo.checkpoints import METADATA_KEY, read_checkpoint
    from zoo.errors import UsageError

    if target.resolve() == source.resolve():
        raise UsageError(f"the calibrated checkpoint would overwrite {source}; write it elsewhere")
    raw = read_checkpoint(source)
    metadata = dict(raw.get(METADATA_KEY) or {})
    metadata["calibration"] = calibration
    raw[METADATA_KEY] = metadata
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    torch.save(raw, partial)
    os.replace(partial, target)
    return target
