"""``GCNConv`` that normalises a graph once and reuses it while the same edge tensor comes back.

``GCNConv`` rebuilds ``D^-1/2 (A + I) D^-1/2`` on every call: on Cora 0.53 ms, four times an epoch (two
layers, training and validation), about 10% of a 200-epoch run on a CPU. PyG's ``cached=True`` keeps the first
graph it sees for good, which is wrong for neighbour-sampled mini-batches, for prediction on another graph and
for export. This layer caches per edge tensor instead: the same tensor object, unchanged in place, with the
same node count and dtype, reuses the normalisation; anything else computes it again. Tracing, exporting and
compiling always compute it, so no cached graph is baked into an artifact.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch_geometric.nn import GCNConv
from typing_extensions import override

__all__ = ["GraphCachingGCNConv"]


class GraphCachingGCNConv(GCNConv):
    """PyG's ``GCNConv`` with its normalised adjacency cached per edge tensor (same arguments, same weights)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._graph: tuple[weakref.ref[torch.Tensor], tuple[int, int, torch.dtype]] | None = None

    @override
    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(N, in_channels)`` (dense or sparse), ``(2, E)`` -> ``(N, out_channels)``."""
        reusable = isinstance(edge_index, torch.Tensor) and edge_weight is None and not _capturing()
        if reusable:
            key = (edge_index._version, x.size(self.node_dim), x.dtype)
            graph = self._graph
            if graph is None or graph[0]() is not edge_index or graph[1] != key:
                self._cached_edge_index = None
                self._graph = (weakref.ref(edge_index), key)
        else:
            self._cached_edge_index, self._graph = None, None
        self.cached = reusable
        return super().forward(x, edge_index, edge_weight)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle and deep-copy without the cache and its weak reference."""
        return {**super().__getstate__(), "_graph": None, "_cached_edge_index": None}


def _capturing() -> bool:
    """Whether the call is being traced, exported or compiled (a cached graph would become a constant)."""
    compiler = torch.compiler
    return torch.jit.is_tracing() or compiler.is_compiling() or getattr(compiler, "is_exporting", lambda: False)()
