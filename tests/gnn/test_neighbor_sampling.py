from __future__ import annotations

from pathlib import Path

import torch
from torch_geometric.sampler import NodeSamplerInput

from zoo.data import PlanetoidDataModule
from zoo.data.neighbor_sampling import TorchNeighborSampler


def test_samples_up_to_k_distinct_real_neighbours_per_node(shared_data: Path) -> None:
    graph = PlanetoidDataModule(name="Cora").graph
    sampler = TorchNeighborSampler(graph, [4, 3], seed=1)
    seeds = graph.train_mask.nonzero().view(-1)[:50]
    out = sampler.sample_from_nodes(NodeSamplerInput(None, seeds))
    nodes = out.node
    assert torch.equal(nodes[:50], seeds) and len(torch.unique(nodes)) == len(nodes)
    assert out.num_sampled_nodes[0] == 50 and sum(out.num_sampled_nodes) == len(nodes)
    edges = set(map(tuple, graph.edge_index.t().tolist()))
    sampled = list(zip(nodes[out.row].tolist(), nodes[out.col].tolist(), strict=True))
    assert all(e in edges for e in sampled)  # every edge is a real edge, neighbour -> node
    assert len(set(sampled)) == len(sampled)  # without replacement
    degree = torch.bincount(graph.edge_index[1], minlength=graph.num_nodes)
    first_hop = torch.bincount(out.col[: out.num_sampled_edges[0]], minlength=len(nodes))[:50]
    assert torch.equal(first_hop, torch.clamp(degree[seeds], max=4))  # min(k, degree) per seed
    again = TorchNeighborSampler(graph, [4, 3], seed=1).sample_from_nodes(NodeSamplerInput(None, seeds))
    assert torch.equal(again.node, nodes) and torch.equal(again.row, out.row)  # repeatable under a seed


def test_minus_one_takes_every_neighbour(shared_data: Path) -> None:
    graph = PlanetoidDataModule(name="Cora").graph
    seeds = torch.tensor([0, 1, 2])
    out = TorchNeighborSampler(graph, [-1], seed=0).sample_from_nodes(NodeSamplerInput(None, seeds))
    degree = torch.bincount(graph.edge_index[1], minlength=graph.num_nodes)
    assert len(out.row) == int(degree[seeds].sum())
