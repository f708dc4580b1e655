"""Synthetic data modules for speed benchmarks: real shapes, fixed content, clear errors."""

from __future__ import annotations

import pytest
import torch

from zoo.data import SyntheticGraphDataModule, SyntheticImageDataModule, SyntheticTokenDataModule


def test_synthetic_images_come_from_the_device_pool_with_the_asked_shapes() -> None:
    data = SyntheticImageDataModule(image_size=40, num_classes=7, num_images=12, batch_size=4)
    data.setup("fit")
    images, labels = data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert images.shape == (4, 3, 40, 40) and images.dtype == torch.float32 and labels.max() < 7
    val_images, _ = next(iter(data.val_dataloader()))
    assert val_images.shape[1:] == (3, 40, 40)
    again = SyntheticImageDataModule(image_size=40, num_classes=7, num_images=12, batch_size=4, seed=5)
    again.setup("fit")
    assert torch.equal(again.device_pool.images, data.device_pool.images)  # the seed orders, never redraws


def test_synthetic_tokens_are_blocks_with_shifted_targets() -> None:
    data = SyntheticTokenDataModule(vocab_size=50, block_size=8, num_tokens=200, batch_size=3)
    data.setup("fit")
    inputs, targets = next(iter(data.train_dataloader()))
    assert inputs.shape == targets.shape == (3, 8) and inputs.max() < 50
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    with pytest.raises(ValueError, match="num_tokens=10 is too few for blocks of 8"):
        SyntheticTokenDataModule(block_size=8, num_tokens=10)


def test_synthetic_graph_is_one_full_batch_with_disjoint_masks() -> None:
    data = SyntheticGraphDataModule(num_nodes=100, num_edges=300, num_features=5, num_classes=4)
    data.setup("fit")
    graph = next(iter(data.train_dataloader()))
    assert graph.x.shape == (100, 5) and graph.edge_index.shape == (2, 600) and int(graph.edge_index.max()) < 100
    masks = torch.stack([graph.train_mask, graph.val_mask, graph.test_mask]).int()
    assert torch.equal(masks.sum(0), torch.ones(100, dtype=torch.int))
    with pytest.raises(ValueError, match="num_nodes must be >= 1, got 0"):
        SyntheticGraphDataModule(num_nodes=0)
