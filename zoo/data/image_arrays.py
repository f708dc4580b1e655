"""Decode small-image datasets once into uint8 arrays, and cache them.

Decoding 60,000 CIFAR JPEGs takes tens of seconds; reading the cached arrays back takes a fraction of one.
Sources are an archive (``<split>/<class>/<image>`` inside a ``.tar.gz``) or the same layout as a folder
tree. The cache key covers the source's path, size, modification time and a sample of its content, so an
edited source is decoded again; cache files are written to a temporary name and renamed, so an interrupted
write never leaves a truncated cache behind.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data.paths import cache_dir
from zoo.errors import DataError, MissingFileError
from zoo.files import atomic_write

__all__ = ["IMAGE_EXTENSIONS", "ImageArrays", "load_split_arrays"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageArrays:
    """Decoded images of one split.

    Attributes:
        images: ``(N, H, W, C)`` uint8.
        labels: ``(N,)`` int64 class indices into ``classes``.
        classes: Class names, sorted; the index of a name is its label.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def load_split_arrays(source: Path, splits: tuple[str, ...], channels: int) -> dict[str, ImageArrays]:
    """Read ``splits`` from an archive or folder tree, decoding once and caching the result.

    Args:
        source: A ``.tar.gz``/``.tar``/``.tgz`` archive, or a folder, holding ``<split>/<class>/<image>``.
        splits: Split folder names to read, e.g. ``("train", "test")``. Every split must have the classes
            of the first.
        channels: Channels every image must have (3 for RGB, 1 for greyscale).

    Returns:
        One :class:`ImageArrays` per split.

    Raises:
        FileNotFoundError: If the source or a split is missing, or a split holds no images.
        ValueError: If an image has another channel count or size than the rest, or the splits' classes
            differ. The message names the file.
    """
    cache_file = cache_dir("arrays") / f"{source.name.split('.')[0]}-{_source_key(source, splits, channels)}.npz"
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as stored:
            classes = tuple(str(c) for c in stored["classes"])
            return {s: ImageArrays(stored[f"{s}_images"], stored[f"{s}_labels"], classes) for s in splits}
    arrays = _decode(source, splits, channels)
    _save_atomically(cache_file, arrays)
    return arrays


def _decode(source: Path, splits: tuple[str, ...], channels: int) -> dict[str, ImageArrays]:
    by_split: dict[str, dict[str, list[np.ndarray]]] = {s: defaultdict(list) for s in splits}
    shape: tuple[int, ...] | None = None
    for split, cls, where, data in _iter_images(source, splits):
        try:
            with Image.open(io.BytesIO(data)) as img:
                bands = len(img.getbands())
                if bands != channels:
                    raise DataError(f"{where}: image has {bands} channel(s) (mode {img.mode}), expected {channels}")
                pixels = np.asarray(img, dtype=np.uint8).reshape(img.height, img.width, channels)
        except OSError as err:  # PIL: UnidentifiedImageError, "image file is truncated", ...
            raise DataError(f"{where}: the image cannot be decoded ({err}); remove or replace it") from None
        if shape is None:
            shape = pixels.shape
        elif pixels.shape != shape:
            raise DataError(f"{where}: image is {pixels.shape[1]}x{pixels.shape[0]}, the others {shape[1]}x{shape[0]}")
        by_split[split][cls].append(pixels)
    classes = tuple(sorted(by_split[splits[0]]))
    result = {}
    for split, per_class in by_split.items():
        if not per_class:
            raise MissingFileError(f"{source}: no images under '{split}/<class>/' (extensions {IMAGE_EXTENSIONS})")
        if tuple(sorted(per_class)) != classes:
            diff = sorted(set(per_class) ^ set(classes))
            raise DataError(f"{source}: split '{split}' has other classes than '{splits[0]}': {diff}")
        images = np.stack([img for cls in classes for img in per_class[cls]])
        labels = np.concatenate([np.full(len(per_class[cls]), i, dtype=np.int64) for i, cls in enumerate(classes)])
        result[split] = ImageArrays(images, labels, classes)
    return result


def _iter_images(source: Path, splits: tuple[str, ...]) -> Iterator[tuple[str, str, str, bytes]]:
    """Yield ``(split, class, location, encoded bytes)`` in sorted order, from an archive or a folder."""
    if source.is_dir():
        for split in splits:
            for path in sorted((source / split).glob("*/*")):
                if path.suffix.lower() in IMAGE_EXTENSIONS:
                    yield split, path.parent.name, str(path), path.read_bytes()
        return
    with tarfile.open(source) as archive:
        members = []
        for member in archive.getmembers():
            parts = Path(member.name).parts
            is_image = len(parts) == 3 and Path(parts[2]).suffix.lower() in IMAGE_EXTENSIONS
            if member.isfile() and is_image and parts[0] in splits:
                members.append((parts, member))
        for parts, member in sorted(members, key=lambda pm: pm[0]):
            handle = archive.extractfile(member)
            assert handle is not None  # regular files always have a handle
            yield parts[0], parts[1], f"{source}:{member.name}", handle.read()


def _source_key(source: Path, splits: tuple[str, ...], channels: int) -> str:
    """A key that changes when the source does: path, size and modification time, plus a sample of the content.

    An archive adds a hash of its first and last megabyte; a folder tree adds every image's name, size and
    modification time (a tool that copies with the old times still changes the size or the sample).
    """
    stat = source.stat()
    parts = [str(source.resolve()), str(stat.st_size), str(stat.st_mtime_ns), ",".join(splits), str(channels)]
    if source.is_dir():
        for split in splits:
            for f in sorted((source / split).glob("*/*")):
                file_stat = f.stat()
                parts.append(f"{f.relative_to(source)}:{file_stat.st_size}:{file_stat.st_mtime_ns}")
    else:
        with source.open("rb") as f:
            head = f.read(2**20)
            f.seek(max(0, stat.st_size - 2**20))
            parts.append(hashlib.sha256(head + f.read()).hexdigest())
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def _save_atomically(path: Path, arrays: dict[str, ImageArrays]) -> None:
    payload: dict[str, np.ndarray] = {"classes": np.array(next(iter(arrays.values())).classes)}
    for split, a in arrays.items():
        payload[f"{split}_images"] = a.images
        payload[f"{split}_labels"] = a.labels
    with atomic_write(path) as f:
        np.savez(f, **payload)
