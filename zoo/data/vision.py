"""Image classification data modules: CIFAR-10 and any class-per-folder dataset.

Both give standard augmentation, a seeded validation split carved from the training set when the data has
none, and loaders whose workers, pinned memory and persistence are chosen for the machine. They expose what
only the data knows (``num_classes``, ``in_chans``, ``class_names``, ``mean``, ``std``, ``image_size``) so
the CLI can link it into the model and export can record the preprocessing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import datasets
from torchvision.transforms import v2

from zoo.data.base import ZooDataModule, check_sampler
from zoo.data.fingerprint import SplitContent, checksums_of_rows
from zoo.data.image_arrays import IMAGE_EXTENSIONS, ImageArrays, load_split_arrays
from zoo.data.image_check import check_image_files
from zoo.data.on_device import DeviceImagePool, is_key_batch
from zoo.data.paths import cache_dir, data_root
from zoo.data.sampling import AugmentedDataset
from zoo.errors import ConfigError, DataError, MissingFileError

__all__ = [
    "ArrayImageDataset",
    "CIFAR10DataModule",
    "ImageFolderDataModule",
    "VisionDataModule",
    "evaluation_transform",
    "preprocess_images",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_ARCHIVE = "cifar10-jpeg.tar.gz"
CIFAR10_MINI_ARCHIVE = "cifar10-mini.tar.gz"


def evaluation_transform(image_size: int, crop_pct: float, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """A PIL image (in the model's mode) -> the normalised ``(C, image_size, image_size)`` float32 tensor.

    timm's evaluation transform: the shorter side resized to ``int(image_size / crop_pct)``, the centre
    ``image_size`` square cropped, scaled to ``[0, 1]``, normalised. ``ImageFolderDataModule`` evaluates with it,
    and ``export.load(...).predict`` prepares raw images with it, so both see the same pixels.
    """
    return v2.Compose(
        [
            v2.Resize(int(image_size / crop_pct)),
            v2.CenterCrop(image_size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )


def preprocess_images(pre: Any, images: Sequence[Any], strict_channels: bool = False) -> torch.Tensor:
    """Image files, PIL images or ``(H, W, C)`` uint8 arrays -> the normalised ``(N, C, S, S)`` batch a model takes.

    ``pre`` is the task's :class:`~zoo.tasks.signature.ImageInput` (size, channels, normalisation, crop): with
    ``crop_pct`` the data's own evaluation transform, else a resize to the square side. Images are converted
    to the model's mode (RGB or greyscale) unless ``strict_channels``, where an image of another channel count
    is refused (an explanation of a converted image would explain an image the user did not give).

    Raises:
        DataError: With ``strict_channels``, naming the image, its mode and the channels the model takes.
    """
    from PIL import Image

    side, channels = pre.image_size, pre.in_chans
    mean, std = pre.mean or (0.0,) * channels, pre.std or (1.0,) * channels
    mode = "RGB" if channels == 3 else "L"
    pictures = []
    for item in images:
        if isinstance(item, str | os.PathLike):
            with Image.open(item) as opened:
                opened.load()
                picture = opened
        else:
            picture = Image.fromarray(item) if isinstance(item, np.ndarray) else item
        if strict_channels and len(picture.getbands()) != channels:
            name = item if isinstance(item, str | os.PathLike) else "an image"
            raise DataError(
                f"{name} has {len(picture.getbands())} channel(s) (mode {picture.mode}) but the model takes "
                f"{channels} ({mode}); convert it first"
            )
        pictures.append(picture.convert(mode))
    if pre.crop_pct is not None:  # the data's own evaluation transform
        transform = evaluation_transform(side, pre.crop_pct, mean, std)
        return torch.stack([transform(picture) for picture in pictures])
    arrays = []
    for picture in pictures:
        if picture.size != (side, side):
            picture = picture.resize((side, side), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(picture, dtype=np.uint8).reshape(side, side, channels))
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    return (batch - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


class ArrayImageDataset(Dataset):
    """Images held in memory as a uint8 array.

    Args:
        images: ``(N, H, W, C)`` uint8.
        labels: ``(N,)`` integer class indices.

    Returns (per item):
        ``(image, label)``: a ``(C, H, W)`` uint8 tensor (a view, no copy) and an int64 scalar tensor.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.images[index]).permute(2, 0, 1), self.labels[index]

    def content(self) -> SplitContent:
        """Each image's pixels and label, for the data fingerprint."""
        labels = self.labels.numpy()
        with np.errstate(over="ignore"):
            checksums = checksums_of_rows(self.images) * np.uint64(1_000_003) + labels.astype(np.uint64)
        return SplitContent(checksums, labels, self.images)


class VisionDataModule(ZooDataModule):
    """The validation split and image metadata shared by the image data modules.

    Args:
        batch_size, eval_batch_size, num_workers, pin_memory, seed: See :class:`zoo.data.base.ZooDataModule`.
        val_split: Share (``0 < x < 1``) or number (``>= 1``) of training images held out for validation
            when the data has no validation split.
        split_seed: Seed of the validation split, fixed so that the held-out images do not change with the
            training seed.
    """

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_split: float = 0.1,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        seed: int | None = None,
        split_seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, pin_memory, seed)
        if val_split < 0 or (val_split >= 1 and val_split != int(val_split)):
            raise ConfigError(f"val_split must be a share in [0, 1) or a whole number of images, got {val_split}")
        self.val_split = val_split
        self.split_seed = split_seed
        # Set by setup() of a module asked to keep its training images on the device (see zoo.data.on_device).
        self.device_pool: DeviceImagePool | None = None

    # What the model and export need to know; subclasses set these in __init__.
    num_classes: int
    in_chans: int
    image_size: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def _split_indices(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Seeded ``(train, val)`` index split of ``n`` training images; ``val_split=0`` trains on all of them."""
        n_val = round(self.val_split * n) if self.val_split < 1 else int(self.val_split)
        if not 0 <= n_val < n or (n_val == 0 and self.val_split > 0):
            raise ConfigError(f"val_split={self.val_split} leaves {n - n_val} of {n} images for training")
        order = np.random.default_rng(self.split_seed).permutation(n)
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        """Worker-loaded batches; or, with the training images on the device, batches of sample keys."""
        if self.device_pool is None:
            return super().train_dataloader()
        trainer = self.trainer
        return self.device_pool.loader(
            self.batch_size,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
            seed=self.seed,
            progress=self._training_progress,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Make a key batch into ``(images, labels)`` on the device it was moved to; other batches pass."""
        if is_key_batch(batch) and self.device_pool is not None:
            return self.device_pool.materialize(batch, batch[next(iter(batch))].device)
        return batch


class CIFAR10DataModule(VisionDataModule):
    """CIFAR-10 from an archive, a folder tree, torchvision's files, or the copy zoo ships.

    Under ``root`` (default ``$ZOO_DATA``, else ``~/.cache/zoo``), the first of these that exists is read:

    1. ``cifar10-jpeg.tar.gz``: ``train/<class>/<image>`` and ``test/<class>/<image>`` in an archive
       (``root`` may also be the archive itself);
    2. ``cifar10/train`` and ``cifar10/test`` as class-per-folder trees (or ``root/train``, ``root/test``);
    3. torchvision's ``cifar-10-batches-py``.

    The images are decoded once and cached as uint8 arrays under ``$ZOO_CACHE``. With ``download=True`` and
    none of the above present, torchvision downloads CIFAR-10 into the cache in ``prepare_data``.
    ``variant="mini"`` reads instead the 12,000-image subset packaged with zoo (1,000 training and 200 test
    images per class, cut from the JPEG archive) so the quickstart needs no data of its own.

    Args:
        root: Folder to look in, or the path of the archive.
        variant: ``"full"`` (50,000 training / 10,000 test images) or ``"mini"``.
        download: Download with torchvision when the data is not found.
        augment: Random crop (4 pixels, reflect padding) and horizontal flip for training.
        random_crop: Include the random crop in that augmentation; diffusion recipes turn it off (flips only),
            since a generator would learn to draw the reflected borders.
        auto_augment: Also apply torchvision's ``"trivialaugment"`` (TrivialAugmentWide) or ``"randaugment"``
            to training images, as vision-transformer recipes need; ``None`` for none.
        random_erasing: Probability of erasing a random rectangle of a training image (DeiT uses 0.25).
        on_device: Keep the training images (150 MB as uint8) on the training device and crop, flip and
            normalise each batch there (:mod:`zoo.data.on_device`), for GPUs that train a small network faster
            than loader workers can feed it. Only the crop and flip augmentations run there.
        sampler: ``random`` (a shuffled epoch) or ``balanced`` (each class drawn about equally often, with
            replacement; for skewed classes), see :class:`zoo.data.sampling.ResumableSampler`.
        batch_size, eval_batch_size, val_split, num_workers, pin_memory, seed, split_seed: See
            :class:`VisionDataModule`; repeated here so that ``zoo fit --help`` and recipe validation see them.

    Batches:
        ``(images, labels)``: ``(B, 3, 32, 32)`` float32 normalised with the CIFAR-10 mean and std, and
        ``(B,)`` int64.
    """

    dataset = "cifar10"
    data_license = "CIFAR-10 (Krizhevsky, 2009): no formal license; free for research use, cite the report"

    def __init__(
        self,
        root: str | None = None,
        variant: Literal["full", "mini"] = "full",
        download: bool = False,
        augment: bool = True,
        random_crop: bool = True,
        auto_augment: Literal["trivialaugment", "randaugment"] | None = None,
        random_erasing: float = 0.0,
        on_device: bool = False,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_split: float = 0.1,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        seed: int | None = None,
        split_seed: int = 0,
        sampler: Literal["random", "balanced"] = "random",
    ) -> None:
        super().__init__(batch_size, eval_batch_size, val_split, num_workers, pin_memory, seed, split_seed)
        self.sampler = check_sampler(sampler)
        if on_device and sampler == "balanced":
            raise ConfigError("on_device=True orders the training images itself; use sampler: balanced without it")
        if on_device and augment and (auto_augment is not None or random_erasing):
            raise ConfigError(
                "on_device=True augments with random crops and flips only; it cannot apply "
                f"auto_augment={auto_augment!r} or random_erasing={random_erasing}: turn those off or on_device off"
            )
        if variant not in ("full", "mini"):
            raise ConfigError(f"variant must be 'full' or 'mini', got {variant!r}")
        self.root = root
        self.variant = variant
        self.download = download
        if auto_augment not in (None, "trivialaugment", "randaugment"):
            raise ConfigError(f"auto_augment must be 'trivialaugment', 'randaugment' or None, got {auto_augment!r}")
        if not 0 <= random_erasing <= 1:
            raise ConfigError(f"random_erasing must be a probability, got {random_erasing}")
        self.augment = augment
        self.random_crop = random_crop
        self.auto_augment = auto_augment
        self.random_erasing = random_erasing
        self.on_device = on_device
        self.num_classes = 10
        self.in_chans = 3
        self.image_size = 32
        self.mean, self.std = CIFAR10_MEAN, CIFAR10_STD
        self.class_names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

    def _torchvision_dir(self) -> Path:
        return cache_dir("torchvision")

    def _find_source(self) -> Path | None:
        if self.variant == "mini":
            return Path(__file__).with_name("assets") / CIFAR10_MINI_ARCHIVE
        root = data_root(self.root)
        for candidate in (root, root / CIFAR10_ARCHIVE):
            if candidate.is_file():
                return candidate
        for tree in (root / "cifar10", root):
            if (tree / "train").is_dir() and (tree / "test").is_dir():
                return tree
        for folder in (root, self._torchvision_dir()):
            if (folder / "cifar-10-batches-py").is_dir():
                return folder / "cifar-10-batches-py"
        return None

    def prepare_data(self) -> None:
        """Download (if asked and needed) and decode into the cache; runs on one process per node."""
        source = self._find_source()
        if source is None and self.download:
            datasets.CIFAR10(self._torchvision_dir(), train=True, download=True)
            datasets.CIFAR10(self._torchvision_dir(), train=False, download=True)
            source = self._find_source()
        self._read(source)

    def _read(self, source: Path | None) -> dict[str, ImageArrays]:
        if source is None:
            root = data_root(self.root)
            raise MissingFileError(
                f"CIFAR-10 not found under {root}: looked for {root / CIFAR10_ARCHIVE}, {root / 'cifar10'}/"
                f"{{train,test}}, {root}/{{train,test}} and {root / 'cifar-10-batches-py'}. Set root (or $ZOO_DATA) "
                "to the folder that holds one of them, or pass download=True."
            )
        if source.name == "cifar-10-batches-py":
            _check_cifar_pickles(source)
            return {
                split: ImageArrays(np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64), tuple(ds.classes))
                for split, ds in (
                    ("train", datasets.CIFAR10(source.parent, train=True)),
                    ("test", datasets.CIFAR10(source.parent, train=False)),
                )
            }
        return load_split_arrays(source, ("train", "test"), channels=self.in_chans)

    def setup(self, stage: str | None = None) -> None:
        """Load the cached arrays and build the train/val/test datasets."""
        arrays = self._read(self._find_source())
        train, test = arrays["train"], arrays["test"]
        if train.images.shape[1:] != (32, 32, 3):
            raise DataError(f"CIFAR-10 images must be 32x32x3, got {train.images.shape[1:]}")
        self.class_names = train.classes
        normalize = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]
        crop = [v2.RandomCrop(32, padding=4, padding_mode="reflect")] if self.random_crop else []
        augment = [*crop, v2.RandomHorizontalFlip()]
        if self.auto_augment is not None:
            augment.append(v2.TrivialAugmentWide() if self.auto_augment == "trivialaugment" else v2.RandAugment())
        erase = [v2.RandomErasing(self.random_erasing)] if self.random_erasing else []
        train_tf = v2.Compose([*augment, *normalize, *erase] if self.augment else normalize)
        eval_tf = v2.Compose(normalize)
        train_idx, val_idx = self._split_indices(len(train))
        self.train_set = AugmentedDataset(
            ArrayImageDataset(train.images[train_idx], train.labels[train_idx]), train_tf, self.seed
        )
        self.val_set = AugmentedDataset(ArrayImageDataset(train.images[val_idx], train.labels[val_idx]), eval_tf)
        self.test_set = AugmentedDataset(ArrayImageDataset(test.images, test.labels), eval_tf)
        if self.on_device:
            self.device_pool = DeviceImagePool(
                train.images[train_idx],
                train.labels[train_idx],
                self.mean,
                self.std,
                crop_padding=4 if self.augment and self.random_crop else 0,
                flip=self.augment,
            )


class ImageFolderDataModule(VisionDataModule):
    """Any class-per-folder dataset (``<split>/<class>/<image>``), read lazily from disk.

    ``root`` holds a ``train`` folder and optionally ``val`` and ``test`` folders with the same classes.
    Without ``val``, a seeded share of ``train`` is held out for validation. Images are decoded per sample
    and converted to RGB (or greyscale when ``in_chans=1``), as torchvision's ``ImageFolder`` does.

    Training augmentation is timm's ImageNet default: a random resized crop and a horizontal flip.
    Evaluation resizes the short side to ``image_size / crop_pct`` and centre-crops ``image_size``.

    Args:
        root: The dataset folder (default ``$ZOO_DATA``, else ``~/.cache/zoo``).
        image_size: Side of the square model input.
        in_chans: 3 for RGB, 1 for greyscale.
        crop_pct: Share of the evaluation image kept by the centre crop.
        mean: Per-channel mean for normalisation (ImageNet's by default).
        std: Per-channel std for normalisation.
        augment: Random resized crop and flip for training; off gives the evaluation transform.
        train_dir: Name of the training folder under ``root``.
        val_dir: Name of the validation folder, used when it exists.
        test_dir: Name of the test folder, used when it exists.
        check_images: At set-up, check each image's header and, for JPEG and PNG, its end, so that a file that
            is not an image or was cut short is named before training starts (about 2 s per 60,000 small
            JPEGs; see :mod:`zoo.data.image_check`). Off, a bad image stops the epoch that reads it.
        sampler: ``random`` (a shuffled epoch) or ``balanced`` (each class drawn about equally often, with
            replacement; for skewed classes), see :class:`zoo.data.sampling.ResumableSampler`.
        batch_size, eval_batch_size, val_split, num_workers, pin_memory, seed, split_seed: See
            :class:`VisionDataModule`.

    Batches:
        ``(images, labels)``: ``(B, in_chans, image_size, image_size)`` float32 and ``(B,)`` int64.

    The class folders are listed when the classes are first asked for (``zoo fit`` links their number into the
    task), not when the module is created.

    Raises:
        FileNotFoundError: If ``root/train_dir`` is missing (when the module is created), or has no class folders
            or a class without images (when the classes are listed).
    """

    def __init__(
        self,
        root: str | None = None,
        image_size: int = 224,
        in_chans: Literal[1, 3] = 3,
        crop_pct: float = 0.875,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        augment: bool = True,
        train_dir: str = "train",
        val_dir: str = "val",
        test_dir: str = "test",
        check_images: bool = True,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        val_split: float = 0.1,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        seed: int | None = None,
        split_seed: int = 0,
        sampler: Literal["random", "balanced"] = "random",
    ) -> None:
        super().__init__(batch_size, eval_batch_size, val_split, num_workers, pin_memory, seed, split_seed)
        self.sampler = check_sampler(sampler)
        if in_chans not in (1, 3):
            raise ConfigError(f"in_chans must be 1 (greyscale) or 3 (RGB), got {in_chans}")
        self.root = data_root(root)
        self.in_chans = in_chans
        self.image_size = image_size
        self.crop_pct = crop_pct
        self.mean = tuple(mean) if mean is not None else (IMAGENET_MEAN if in_chans == 3 else (0.5,))
        self.std = tuple(std) if std is not None else (IMAGENET_STD if in_chans == 3 else (0.5,))
        if len(self.mean) != in_chans or len(self.std) != in_chans:
            raise ConfigError(f"mean and std need {in_chans} values each, got {self.mean} and {self.std}")
        self.augment = augment
        self.split_dirs = {"train": train_dir, "val": val_dir, "test": test_dir}
        self.check_images = check_images
        self._checked: set[Path] = set()
        if not (self.root / train_dir).is_dir():
            raise MissingFileError(f"data folder {self.root / train_dir} does not exist")

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        """The class folders of the training split, sorted."""
        return _class_folders(self.root / self.split_dirs["train"])

    @property
    def num_classes(self) -> int:
        """Number of classes (linked into the task)."""
        return len(self.class_names)

    def _images(self, split: str) -> datasets.ImageFolder | None:
        """The untransformed ``(PIL image, label)`` dataset of a split, or ``None`` when it has no folder."""
        folder = self.root / self.split_dirs[split]
        if split != "train" and not folder.is_dir():
            return None
        classes = _class_folders(folder)
        if classes != self.class_names:
            diff = sorted(set(classes) ^ set(self.class_names))
            raise DataError(f"{folder}: classes differ from {self.root / self.split_dirs['train']}: {diff}")
        loader = partial(_load_image, mode="RGB" if self.in_chans == 3 else "L")
        images = datasets.ImageFolder(str(folder), loader=loader)
        if self.check_images and folder not in self._checked:
            check_image_files([path for path, _ in images.samples], folder)
            self._checked.add(folder)
        return images

    def setup(self, stage: str | None = None) -> None:
        """Index (and check) the image files and build the datasets; nothing is decoded here."""
        normalize = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]
        eval_tf = evaluation_transform(self.image_size, self.crop_pct, self.mean, self.std)
        train_tf = v2.Compose(
            [v2.RandomResizedCrop(self.image_size), v2.RandomHorizontalFlip(), *normalize]
            if self.augment
            else eval_tf.transforms
        )
        train: Dataset | None = self._images("train")
        assert train is not None
        val = self._images("val")
        if val is None:
            train_idx, val_idx = self._split_indices(len(train))
            train, val = Subset(train, train_idx.tolist()), Subset(train, val_idx.tolist())
        test = self._images("test")
        self.train_set = AugmentedDataset(train, train_tf, self.seed)
        self.val_set = AugmentedDataset(val, eval_tf)
        self.test_set = AugmentedDataset(test, eval_tf) if test is not None else None


def _check_cifar_pickles(folder: Path) -> None:
    """Check CIFAR's Python batches, which torchvision reads with plain ``pickle``: arrays, lists, dicts only."""
    from zoo.data.safe_pickle import CONTAINER_GLOBALS, NUMPY_GLOBALS, check_pickle

    for path in sorted(folder.iterdir()):
        if path.is_file() and (path.name.startswith(("data_batch", "test_batch")) or path.name == "batches.meta"):
            check_pickle(path, NUMPY_GLOBALS | CONTAINER_GLOBALS)


def _class_folders(folder: Path) -> tuple[str, ...]:
    """Sorted class folder names under ``folder``, checking each holds at least one image."""
    if not folder.is_dir():
        raise MissingFileError(f"data folder {folder} does not exist")
    classes = tuple(sorted(entry.name for entry in os.scandir(folder) if entry.is_dir()))
    if not classes:
        raise MissingFileError(f"data folder {folder} has no class folders (expected {folder}/<class>/<image>)")
    for cls in classes:
        with os.scandir(folder / cls) as entries:
            if not any(Path(e.name).suffix.lower() in IMAGE_EXTENSIONS for e in entries):
                raise MissingFileError(f"class folder {folder / cls} holds no image ({', '.join(IMAGE_EXTENSIONS)})")
    return classes


def _load_image(path: str, mode: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except OSError as err:  # PIL: UnidentifiedImageError, "image file is truncated", ...
        raise DataError(f"image {path} cannot be decoded ({err}); remove or replace it") from None
