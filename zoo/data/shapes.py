"""Generated images of coloured shapes: an offline image set that small models learn in CPU minutes.

Each image is one disc, square or triangle of random size, position and colour on a plain background of
another colour, drawn with 2x2 supersampling so edges are anti-aliased. The label is the shape. It is the
data of the tiny diffusion recipe: a generator that has learnt anything draws clean shapes with sharp
edges, which one can judge by eye, and a class-conditional one draws the shape asked for.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2

from zoo.data.sampling import AugmentedDataset
from zoo.data.vision import ArrayImageDataset, VisionDataModule
from zoo.errors import ConfigError

__all__ = ["SHAPE_CLASSES", "ShapesDataModule", "draw_shapes"]

SHAPE_CLASSES = ("disc", "square", "triangle")
_SUPERSAMPLE = 2
_MIN_COLOUR_DISTANCE = 0.5  # Euclidean, in [0, 1] RGB units: the shape always stands out


def draw_shapes(num_images: int, image_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``num_images`` shape images from a private generator seeded by ``seed``.

    Returns:
        ``(images, labels)``: ``(N, S, S, 3)`` uint8 and ``(N,)`` int64 indices into :data:`SHAPE_CLASSES`,
        the classes in turn so that every class has the same count (up to one).
    """
    rng = np.random.default_rng(seed)
    side = image_size * _SUPERSAMPLE
    coords = (np.arange(side) + 0.5) / _SUPERSAMPLE
    y, x = np.meshgrid(coords, coords, indexing="ij")
    labels = np.arange(num_images) % len(SHAPE_CLASSES)
    rng.shuffle(labels)
    images = np.empty((num_images, image_size, image_size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        radius = rng.uniform(0.18, 0.34) * image_size
        cx, cy = rng.uniform(radius, image_size - radius, size=2)
        background = rng.uniform(0, 1, 3)
        foreground = rng.uniform(0, 1, 3)
        while np.linalg.norm(foreground - background) < _MIN_COLOUR_DISTANCE:
            foreground = rng.uniform(0, 1, 3)
        if label == 0:
            inside = (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
        elif label == 1:
            half = 0.85 * radius
            inside = (np.abs(x - cx) <= half) & (np.abs(y - cy) <= half)
        else:  # apex up, base below the centre
            top, bottom = cy - radius, cy + 0.8 * radius
            inside = (y >= top) & (y <= bottom) & (np.abs(x - cx) <= (y - top) / (bottom - top) * radius)
        mask = inside.reshape(image_size, _SUPERSAMPLE, image_size, _SUPERSAMPLE).mean(axis=(1, 3))[..., None]
        pixels = mask * foreground + (1 - mask) * background
        images[i] = np.round(pixels * 255).astype(np.uint8)
    return images, labels.astype(np.int64)


class ShapesDataModule(VisionDataModule):
    """Generated coloured discs, squares and triangles; nothing to download.

    Training, validation and test images are drawn from different seeds (derived from ``data_seed``), so
    no image is in two splits. Batches are normalised to ``[-1, 1]`` (mean and std 0.5), the range diffusion
    models work in; the training images are flipped horizontally at random.

    Args:
        image_size: Side of the square images.
        num_train: Training images.
        num_val: Validation images.
        num_test: Test images.
        data_seed: Seed of the drawing.
        augment: Random horizontal flips for training.
        batch_size, eval_batch_size, num_workers, pin_memory, seed: See :class:`zoo.data.base.ZooDataModule`.

    Batches:
        ``(images, labels)``: ``(B, 3, image_size, image_size)`` float32 in ``[-1, 1]`` and ``(B,)`` int64.
    """

    dataset = "shapes"
    data_license = "shapes drawn by zoo at run time: no third-party data, Apache-2.0 like zoo"

    def __init__(
        self,
        image_size: int = 32,
        num_train: int = 10_000,
        num_val: int = 500,
        num_test: int = 1_000,
        data_seed: int = 0,
        augment: bool = True,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, 0.0, num_workers, pin_memory, seed)
        if image_size < 8:
            raise ConfigError(f"image_size must be at least 8 pixels to draw a shape, got {image_size}")
        for name, count in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
            if count < 1:
                raise ConfigError(f"{name} must be >= 1, got {count}")
        self.image_size = image_size
        self.counts = {"train": num_train, "val": num_val, "test": num_test}
        self.data_seed = data_seed
        self.augment = augment
        self.num_classes = len(SHAPE_CLASSES)
        self.class_names = SHAPE_CLASSES
        self.in_chans = 3
        self.mean, self.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)

    def setup(self, stage: str | None = None) -> None:
        """Draw the three splits (about a second for 10,000 images of 32x32)."""
        normalize = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]
        train_tf = v2.Compose([v2.RandomHorizontalFlip(), *normalize] if self.augment else normalize)
        eval_tf = v2.Compose(normalize)
        splits = {}
        for offset, (split, count) in enumerate(self.counts.items()):
            images, labels = draw_shapes(count, self.image_size, seed=self.data_seed * 3 + offset)
            splits[split] = ArrayImageDataset(images, labels)
        self.train_set = AugmentedDataset(splits["train"], train_tf, self.seed)
        self.val_set = AugmentedDataset(splits["val"], eval_tf)
        self.test_set = AugmentedDataset(splits["test"], eval_tf)
