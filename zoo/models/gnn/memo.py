"""What the GNN layers' per-graph caches share: "is this the tensor I saw last time?" and "is this call captured?".

Full-batch training feeds the same feature and edge tensors every step, so work derived from them (the
non-zero positions of the features, the normalised adjacency) can be done once; anything else (another graph,
a tensor changed in place) must redo it. A cache must also stay out of traced and exported graphs, where it
would become a constant.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

__all__ = ["TensorMemo", "tracing_or_exporting"]


class TensorMemo:
    """Remembers one tensor weakly (so it never keeps a graph alive) with its in-place version and a key.

    Copies and pickles start empty: a weak reference cannot travel, and the copy sees new tensors anyway.
    """

    def __init__(self) -> None:
        self._seen: tuple[weakref.ref[torch.Tensor], tuple[Any, ...]] | None = None

    def is_new(self, tensor: torch.Tensor, *key: Any) -> bool:
        """Whether ``tensor`` differs from the one seen last (another object, changed in place, another key).

        Either way ``tensor`` is the one remembered afterwards.
        """
        current = (tensor._version, *key)
        seen = self._seen
        if seen is not None and seen[0]() is tensor and seen[1] == current:
            return False
        self._seen = (weakref.ref(tensor), current)
        return True

    def forget(self) -> None:
        """Remember nothing: the next tensor is new."""
        self._seen = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_seen": None}


def tracing_or_exporting() -> bool:
    """Whether the call is being traced by TorchScript or captured by ``torch.export``."""
    return torch.jit.is_tracing() or getattr(torch.compiler, "is_exporting", lambda: False)()
