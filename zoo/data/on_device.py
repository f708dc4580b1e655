"""Training images kept on the training device and augmented there, one batch at a time.

For a small dataset on a fast GPU the input pipeline, not the model, bounds a run: CIFAR-10 trains at well
over 100,000 images per second on an H100, while loader workers decode, crop and normalise a few thousand per
second per core and every batch crosses PCIe. As uint8, CIFAR-10's 50,000 training images take 150 MB, so they
can live in GPU memory: the loader then yields only sample keys, and the data module's
``on_after_batch_transfer`` gathers the batch from the resident copy, crops, flips and normalises it with a
few batched tensor operations on the device.

Reproducibility and resume are kept: the keys come from :class:`~zoo.data.sampling.ResumableSampler` (same
order, sharding and mid-epoch resume as the worker path) and the augmentation of a batch is drawn from a
generator seeded by ``(seed, epoch, first index of the batch)``, so it depends on the run's seed and position
alone. It differs from the worker path's per-sample draws, so the two paths do not give bit-identical runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from zoo.data.sampling import ResumableDataLoader, ResumableSampler, sample_seed
from zoo.errors import ConfigError, DataError

__all__ = ["DeviceImagePool", "is_key_batch"]

KEYS = "zoo_on_device_indices"


def is_key_batch(batch: Any) -> bool:
    """Whether ``batch`` is a batch of sample keys from :meth:`DeviceImagePool.loader` (not yet images)."""
    return isinstance(batch, dict) and KEYS in batch


class _Keys(Dataset):
    """Turns a batch of ``(epoch, index)`` keys into one small dict in one call (``__getitems__``)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        return self.__getitems__([key])

    def __getitems__(self, keys: list[tuple[int, int]]) -> dict[str, Any]:
        epoch, first = keys[0]
        return {KEYS: torch.tensor([index for _, index in keys]), "seed": sample_seed(self.seed, epoch, first)}


def _whole_batch(batch: dict[str, Any]) -> dict[str, Any]:
    return batch


class DeviceImagePool:
    """uint8 training images and labels, copied once to each device that asks, and batches made from them.

    Args:
        images: ``(N, H, W, C)`` uint8 (as the array caches hold them).
        labels: ``(N,)`` integer class indices.
        mean: Per-channel mean of the ``[0, 1]`` pixel values, for normalisation.
        std: Per-channel standard deviation.
        crop_padding: Random crop after this much reflect padding on each side (0: no crop).
        flip: Random horizontal flip.

    Raises:
        ValueError: If the shapes do not match or the images are not uint8.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        crop_padding: int = 0,
        flip: bool = False,
    ) -> None:
        if images.ndim != 4 or images.dtype != np.uint8:
            raise DataError(f"images must be (N, H, W, C) uint8, got {images.shape} {images.dtype}")
        if len(labels) != len(images):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        if len(mean) != images.shape[3] or len(std) != images.shape[3]:
            raise ConfigError(f"mean/std have {len(mean)}/{len(std)} values for {images.shape[3]} channels")
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # (N, C, H, W) view
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.mean, self.std = mean, std
        self.crop_padding, self.flip = crop_padding, flip
        self._resident: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def loader(self, batch_size: int, num_replicas: int, rank: int, seed: int, progress: Any) -> DataLoader:
        """A training loader of key batches, in the order, sharding and resume of the worker path."""
        sampler = ResumableSampler(_Keys(len(self), seed), num_replicas=num_replicas, rank=rank, seed=seed)
        return ResumableDataLoader(
            sampler.dataset,
            sampler=sampler,
            progress=progress,
            batch_size=batch_size,
            drop_last=len(sampler) > batch_size,
            collate_fn=_whole_batch,
            num_workers=0,  # the work is on the device; worker processes would only add latency
        )

    def materialize(self, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, labels)`` for a key batch: ``(B, C, H, W)`` float32 normalised, and ``(B,)`` int64."""
        images, labels, mean, std = self._on(device)
        indices = batch[KEYS].to(device, non_blocking=True)
        generator = torch.Generator(device).manual_seed(batch["seed"])
        x = images[indices].float().div_(255)
        if self.crop_padding:
            x = _random_crops(x, self.crop_padding, generator)
        if self.flip:
            flips = torch.rand(len(x), 1, 1, 1, device=device, generator=generator) < 0.5
            x = torch.where(flips, x.flip(3), x)
        return (x - mean).div_(std), labels[indices]

    def _on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Images, labels, mean and std on ``device``, copied there once (a copy per batch would sync the host)."""
        if device not in self._resident:
            stats = [torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1).to(device) for v in (self.mean, self.std)]
            self._resident[device] = (self.images.contiguous().to(device), self.labels.to(device), *stats)
        return self._resident[device]


def _random_crops(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per-image random crops of the original size from float ``x`` reflect-padded by ``padding``: ``(B, C, H, W)``."""
    batch, _, height, width = x.shape
    padded = F.pad(x, (padding,) * 4, "reflect")
    top = torch.randint(0, 2 * padding + 1, (batch, 1), device=x.device, generator=generator)
    left = torch.randint(0, 2 * padding + 1, (batch, 1), device=x.device, generator=generator)
    rows = (top + torch.arange(height, device=x.device)).view(batch, 1, height, 1)
    cols = (left + torch.arange(width, device=x.device)).view(batch, 1, 1, width)
    image = torch.arange(batch, device=x.device).view(batch, 1, 1, 1)
    channel = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[image, channel, rows, cols]
