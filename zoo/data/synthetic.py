"""Random data of real sizes, for measuring training speed with no input pipeline in the way.

Speed benchmarks (``benchmarks/side_by_side.py``) compare training loops, so their data must cost next to
nothing: these modules make random inputs once, of the shapes a real run would use, and serve them from
memory (images from the training device, see :mod:`zoo.data.on_device`). Nothing here is learnable; a loss
falls only as far as a model can memorise noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2
from typing_extensions import override

from zoo.data.base import ZooDataModule
from zoo.data.on_device import DeviceImagePool
from zoo.data.sampling import AugmentedDataset
from zoo.data.text import TokenBlocks
from zoo.data.vision import IMAGENET_MEAN, IMAGENET_STD, ArrayImageDataset, VisionDataModule
from zoo.errors import ConfigError

__all__ = ["SyntheticGraphDataModule", "SyntheticImageDataModule", "SyntheticTokenDataModule"]

DATA_SEED = 0  # the data never changes with the run's seed; only its order does


def _positive(**sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")


class SyntheticImageDataModule(VisionDataModule):
    """Random uint8 images and labels, kept on the training device (no augmentation).

    Args:
        image_size: Height and width ``S``.
        num_classes: Number of labels.
        in_chans: Channels ``C``.
        num_images: Images in the training pool (one epoch); ``2560 x 224 x 224 x 3`` bytes is 385 MB.
        batch_size, eval_batch_size, seed: See :class:`zoo.data.base.ZooDataModule`.

    Batches:
        ``(images, labels)``: ``(B, C, S, S)`` float32 normalised with ImageNet's mean and std (0.5 for other
        channel counts), ``(B,)`` int64. Validation and test use the first two batches' worth of the pool.
    """

    def __init__(
        self,
        image_size: int = 224,
        num_classes: int = 1000,
        in_chans: int = 3,
        num_images: int = 2560,
        batch_size: int = 256,
        eval_batch_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, val_split=0, num_workers=0, seed=seed)
        _positive(image_size=image_size, num_classes=num_classes, in_chans=in_chans, num_images=num_images)
        self.image_size, self.num_classes, self.in_chans, self.num_images = (
            image_size,
            num_classes,
            in_chans,
            num_images,
        )
        self.mean, self.std = (IMAGENET_MEAN, IMAGENET_STD) if in_chans == 3 else ((0.5,) * in_chans,) * 2
        self.class_names = tuple(f"class_{i}" for i in range(num_classes))

    def setup(self, stage: str | None = None) -> None:
        """Draw the pool (once) and put the evaluation split beside it."""
        if self.device_pool is not None:
            return
        rng = np.random.default_rng(DATA_SEED)
        size = (self.num_images, self.image_size, self.image_size, self.in_chans)
        images = rng.integers(0, 256, size, dtype=np.uint8)
        labels = rng.integers(0, self.num_classes, self.num_images)
        self.device_pool = DeviceImagePool(images, labels, self.mean, self.std)
        held = min(self.num_images, 2 * self.eval_batch_size)
        normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)])
        self.val_set = AugmentedDataset(ArrayImageDataset(images[:held], labels[:held]), normalize)
        self.test_set = self.val_set


class SyntheticTokenDataModule(ZooDataModule):
    """A random token stream cut into blocks, as :class:`~zoo.data.TextCorpusDataModule` cuts a corpus.

    Args:
        vocab_size: Token ids are drawn uniformly from ``[0, vocab_size)`` (GPT-2's 50,257 padded to 50,304).
        block_size: Tokens per example ``T``.
        num_tokens: Length of the training stream; validation uses another ``4 T + 1`` tokens.
        batch_size, eval_batch_size, seed: See :class:`zoo.data.base.ZooDataModule`.

    Batches:
        ``(inputs, targets)``: ``(B, T)`` int64 each.
    """

    def __init__(
        self,
        vocab_size: int = 50304,
        block_size: int = 1024,
        num_tokens: int = 2**22,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers=0, seed=seed)
        _positive(vocab_size=vocab_size, block_size=block_size)
        if num_tokens < 2 * block_size + 1:
            raise ConfigError(
                f"num_tokens={num_tokens} is too few for blocks of {block_size} (need {2 * block_size + 1})"
            )
        self.vocab_size, self.block_size, self.num_tokens = vocab_size, block_size, num_tokens

    def setup(self, stage: str | None = None) -> None:
        """Draw the stream (once)."""
        if self.train_set is not None:
            return
        generator = torch.Generator().manual_seed(DATA_SEED)
        tokens = torch.randint(0, self.vocab_size, (self.num_tokens + 4 * self.block_size + 1,), generator=generator)
        tokens = tokens.to(torch.int32)
        self.train_set = TokenBlocks(tokens[: self.num_tokens], self.block_size, self.seed)
        self.val_set = TokenBlocks(tokens[self.num_tokens :], self.block_size)


class SyntheticGraphDataModule(ZooDataModule):
    """One large random graph for full-batch node classification (every batch is the whole graph).

    Edges join uniformly drawn node pairs, in both directions; features are standard normal; labels uniform.
    Half the nodes are for training and a quarter each for validation and test.

    Args:
        num_nodes: Nodes ``N``.
        num_edges: Undirected edges (``2 x num_edges`` directed ones in ``edge_index``).
        num_features: Features per node ``F``.
        num_classes: Labels.
        seed: See :class:`zoo.data.base.ZooDataModule`.

    Batches:
        A ``torch_geometric.data.Batch`` of the one graph: ``x (N, F)``, ``edge_index (2, 2 E)``, ``y (N,)``
        and the boolean ``train_mask``, ``val_mask``, ``test_mask``.
    """

    def __init__(
        self,
        num_nodes: int = 200_000,
        num_edges: int = 2_000_000,
        num_features: int = 128,
        num_classes: int = 16,
        seed: int | None = None,
    ) -> None:
        super().__init__(1, 1, num_workers=0, seed=seed)
        _positive(num_nodes=num_nodes, num_edges=num_edges, num_features=num_features, num_classes=num_classes)
        self.num_nodes, self.num_edges = num_nodes, num_edges
        self.in_channels, self.num_classes = num_features, num_classes
        self.graph: Any = None

    def setup(self, stage: str | None = None) -> None:
        """Draw the graph (once)."""
        if self.graph is not None:
            return
        from torch_geometric.data import Data

        generator = torch.Generator().manual_seed(DATA_SEED)
        ends = torch.randint(0, self.num_nodes, (2, self.num_edges), generator=generator)
        split = torch.rand(self.num_nodes, generator=generator)
        self.graph = Data(
            x=torch.randn(self.num_nodes, self.in_channels, generator=generator),
            edge_index=torch.cat([ends, ends.flip(0)], dim=1),
            y=torch.randint(0, self.num_classes, (self.num_nodes,), generator=generator),
            train_mask=split < 0.5,
            val_mask=(split >= 0.5) & (split < 0.75),
            test_mask=split >= 0.75,
        )

    def _whole_graph(self) -> Any:
        from zoo.data.graph import whole_graph_loader

        return whole_graph_loader(self.graph, self.trainer, self.seed)

    @override
    def train_dataloader(self) -> Any:
        return self._whole_graph()

    @override
    def val_dataloader(self) -> Any:
        return self._whole_graph()

    @override
    def test_dataloader(self) -> Any:
        return self._whole_graph()

    @property
    @override
    def has_test_data(self) -> bool:
        return True
