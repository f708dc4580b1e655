"""Neighbour-sampled mini-batches for node classification, with or without PyG's compiled samplers.

PyG's ``NeighborLoader`` samples with ``pyg-lib`` or ``torch-sparse``, compiled packages that PyPI does not carry
(they come from data.pyg.org). Where neither is installed, :func:`neighbor_loader` builds the same kind of
loader from PyG's ``NodeLoader`` and :class:`TorchNeighborSampler`, a sampler written with torch operations
only. Batches look the same either way: a subgraph whose first ``batch_size`` nodes are the seeds, with
``n_id``, ``e_id`` and ``batch_size`` attributes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.loader import NeighborLoader, NodeLoader
from torch_geometric.sampler import BaseSampler, NodeSamplerInput, SamplerOutput
from torch_geometric.typing import WITH_PYG_LIB, WITH_TORCH_SPARSE
from typing_extensions import override

__all__ = ["TorchNeighborSampler", "neighbor_loader"]


class TorchNeighborSampler(BaseSampler):
    """Sample up to ``num_neighbors[l]`` incoming neighbours per node and hop, without replacement.

    Hop ``l`` draws, for every node reached at hop ``l - 1`` (the seeds first), a uniform sample of its incoming
    edges (all of them when it has fewer), adding their source nodes. Edges point from neighbour to node, as
    messages flow. A private generator seeded at creation makes the batches repeatable.

    Args:
        data: A homogeneous PyG ``Data`` with ``edge_index``.
        num_neighbors: Neighbours per node for each hop; ``-1`` takes all of them.
        seed: Seed of the sampling.
    """

    def __init__(self, data: Any, num_neighbors: list[int], seed: int = 0) -> None:
        edge_index = data.edge_index
        num_nodes = data.num_nodes
        order = torch.argsort(edge_index[1], stable=True)  # incoming edges grouped by target
        self.sources = edge_index[0][order]
        self.edge_ids = order
        counts = torch.bincount(edge_index[1], minlength=num_nodes)
        self.colptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        self.num_nodes = num_nodes
        self.num_neighbors = list(num_neighbors)
        self.generator = torch.Generator().manual_seed(seed)

    def _sample_edges(self, targets: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``k`` incoming edges per target.

        Returns their positions in the target-sorted edge list and, for each, the index of its target in
        ``targets``.
        """
        starts, degrees = self.colptr[targets], self.colptr[targets + 1] - self.colptr[targets]
        group_starts = torch.repeat_interleave(degrees.cumsum(0) - degrees, degrees)
        owner = torch.repeat_interleave(torch.arange(len(targets)), degrees)
        positions = starts[owner] + torch.arange(len(owner)) - group_starts
        if k < 0:
            return positions, owner
        # Random scores; within each target's group (kept in target order), keep the k lowest.
        by_score = torch.argsort(torch.rand(len(positions), generator=self.generator))
        regrouped = by_score[torch.argsort(owner[by_score], stable=True)]
        keep = regrouped[torch.arange(len(owner)) - group_starts < k]
        return positions[keep], owner[keep]

    @override
    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs: Any) -> SamplerOutput:
        seeds = index.node
        local = torch.full((self.num_nodes,), -1, dtype=torch.long)
        local[seeds] = torch.arange(len(seeds))
        nodes, frontier = [seeds], seeds
        rows, cols, edges = [], [], []
        num_sampled_nodes, num_sampled_edges = [len(seeds)], []
        count = len(seeds)
        for k in self.num_neighbors:
            positions, owner = self._sample_edges(frontier, k)
            sources, targets = self.sources[positions], frontier[owner]
            new = torch.unique(sources[local[sources] < 0])
            local[new] = torch.arange(count, count + len(new))
            count += len(new)
            rows.append(local[sources])
            cols.append(local[targets])
            edges.append(self.edge_ids[positions])
            nodes.append(new)
            num_sampled_nodes.append(len(new))
            num_sampled_edges.append(len(positions))
            frontier = new
        return SamplerOutput(
            node=torch.cat(nodes),
            row=torch.cat(rows),
            col=torch.cat(cols),
            edge=torch.cat(edges),
            batch=None,
            num_sampled_nodes=num_sampled_nodes,
            num_sampled_edges=num_sampled_edges,
            metadata=(index.input_id, None),
        )

    def sample_from_edges(self, index: Any, **kwargs: Any) -> SamplerOutput:
        """Link-level sampling is not needed by zoo's node tasks."""
        raise NotImplementedError("TorchNeighborSampler samples around nodes only")


def neighbor_loader(
    data: Any, num_neighbors: list[int], input_nodes: torch.Tensor, seed: int = 0, **kwargs: Any
) -> Any:
    """A neighbour-sampling loader over ``input_nodes``.

    PyG's ``NeighborLoader`` when its compiled sampler is installed, else ``NodeLoader`` with
    :class:`TorchNeighborSampler`; ``kwargs`` go to the ``DataLoader`` (``batch_size``, ``sampler``, ...).
    """
    if WITH_PYG_LIB or WITH_TORCH_SPARSE:
        return NeighborLoader(data, num_neighbors=num_neighbors, input_nodes=input_nodes, **kwargs)
    sampler = TorchNeighborSampler(data, num_neighbors, seed=seed)
    return NodeLoader(data, node_sampler=sampler, input_nodes=input_nodes, **kwargs)
