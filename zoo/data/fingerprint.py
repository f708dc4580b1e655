"""A data fingerprint: a cheap content hash of what a run read, its split sizes, class counts and pixel statistics.

A number from a run is only comparable with another if both read the same data. The fingerprint answers that
without keeping the data: ``content_sha256`` changes when any sample or label changes, and does not change
when the same samples come in another order (files listed in another order, a shuffled cache). Each item of
a split gets a 64-bit checksum (of its pixels and label, its file's path, size and label, its token ids, its
graph); a split's digest is the SHA-256 of its sorted checksums. Pixel checksums are a weighted sum of the
item's bytes (about 0.1 s for the 184 MB of CIFAR-10's training images): a change detector, not a defence
against someone forging a collision.

Our datasets describe themselves with a ``content()`` method returning :class:`SplitContent`; this module
covers the foreign ones zoo uses (``torch.utils.data.Subset``, torchvision's ``ImageFolder``, lists of PyG
graphs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["SplitContent", "checksums_of_rows", "content_of", "fingerprint", "fingerprint_changes", "hash64"]

_CHUNK_ROWS = 4096
_SAMPLED_FILES = 64  # image files whose bytes are hashed (the rest by path and size)
_STATS_IMAGES = 10_000  # at most this many training images go into the per-channel statistics
_WEIGHTS = np.random.default_rng(20261130).integers(1, 2**63, size=1 << 16, dtype=np.uint64) | np.uint64(1)


@dataclass
class SplitContent:
    """What one split holds, as a fingerprint needs it.

    Attributes:
        checksums: ``(N,)`` uint64, one per item; equal items give equal checksums whatever their position.
        labels: ``(N,)`` integer class indices, for classification data.
        images: ``(N, H, W, C)`` uint8 pixels, for the per-channel statistics (image arrays only).
        items: The split's size when it is not the number of checksums (a token stream: one checksum for
            the stream, so many blocks).
    """

    checksums: np.ndarray
    labels: np.ndarray | None = None
    images: np.ndarray | None = None
    items: int | None = None

    def select(self, indices: Any) -> SplitContent:
        """The items at ``indices`` (a subset of the split)."""
        index = np.asarray(indices, dtype=np.int64)
        return SplitContent(
            self.checksums[index],
            None if self.labels is None else self.labels[index],
            None if self.images is None else self.images[index],
        )


def hash64(*parts: bytes | str) -> int:
    """The first 8 bytes of the SHA-256 of ``parts`` as an unsigned integer."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return int.from_bytes(digest.digest()[:8], "little")


def checksums_of_rows(array: np.ndarray | torch.Tensor) -> np.ndarray:
    """``(N, ...)`` -> ``(N,)`` uint64: a weighted sum (mod 2**64) of each row's bytes, read as 64-bit words."""
    rows = np.ascontiguousarray(array.numpy() if isinstance(array, torch.Tensor) else array)
    rows = rows.reshape(len(rows), int(np.prod(rows.shape[1:]))).view(np.uint8)
    width = -(-rows.shape[1] // 8) * 8
    out = np.empty(len(rows), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for start in range(0, len(rows), _CHUNK_ROWS):
            chunk = rows[start : start + _CHUNK_ROWS]
            if width != chunk.shape[1]:
                chunk = np.pad(chunk, ((0, 0), (0, width - chunk.shape[1])))
            words = np.ascontiguousarray(chunk).view(np.uint64)
            weights = np.resize(_WEIGHTS, words.shape[1])
            out[start : start + len(chunk)] = (words * weights).sum(axis=1, dtype=np.uint64)
    return out


def content_of(dataset: Any) -> SplitContent | None:
    """The :class:`SplitContent` of a dataset, or ``None`` when it cannot say."""
    if dataset is None:
        return None
    own = getattr(dataset, "content", None)
    if callable(own):
        return own()
    if isinstance(dataset, torch.utils.data.Subset):
        base = content_of(dataset.dataset)
        return None if base is None else base.select(dataset.indices)
    samples = getattr(dataset, "samples", None)
    if isinstance(samples, list) and samples and isinstance(samples[0], tuple):  # torchvision's ImageFolder
        return _files_content(samples, Path(getattr(dataset, "root", "/")))
    if isinstance(dataset, list) and dataset and hasattr(dataset[0], "edge_index"):  # PyG graphs
        checksums = np.array([graph_checksum(g) for g in dataset], dtype=np.uint64)
        labels = np.array([int(g.y.view(-1)[0]) for g in dataset]) if hasattr(dataset[0], "y") else None
        return SplitContent(checksums, labels)
    return None


def graph_checksum(graph: Any, attributes: tuple[str, ...] = ("x", "edge_index", "edge_attr", "y")) -> int:
    """One graph's checksum: its features, edges and labels (whichever it has)."""
    parts = []
    for name in attributes:
        value = getattr(graph, name, None)
        if isinstance(value, torch.Tensor):
            parts += [name, str(tuple(value.shape)), value.detach().cpu().contiguous().numpy().tobytes()]
    return hash64(*parts)


def fingerprint(
    splits: Mapping[str, SplitContent | None], dataset: str | None = None, sizes: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """The fingerprint of a data module's splits.

    Args:
        splits: ``{"train": ..., "val": ..., "test": ...}``; a ``None`` split contributes its size only.
        dataset: The dataset's short name.
        sizes: Split sizes for splits without content (otherwise the number of checksums).

    Returns:
        ``{"dataset", "content_sha256", "split_sha256": {split: hex}, "splits": {split: size},
        "class_counts": {split: [count per class]}, "channel_mean", "channel_std", "stats_images"}``;
        ``content_sha256`` is ``None`` when no split could describe its content.
    """
    digests, counts = {}, {}
    for name, content in splits.items():
        if content is None:
            continue
        digests[name] = hashlib.sha256(np.sort(content.checksums).tobytes()).hexdigest()
        if content.labels is not None and len(content.labels):
            counts[name] = np.bincount(np.asarray(content.labels, dtype=np.int64)).tolist()
    record: dict[str, Any] = {
        "dataset": dataset,
        "content_sha256": hashlib.sha256("".join(f"{k}:{v};" for k, v in sorted(digests.items())).encode()).hexdigest()
        if digests
        else None,
        "split_sha256": digests,
        "splits": {name: _size(c) if c is not None else (sizes or {}).get(name) for name, c in splits.items()},
        "class_counts": counts,
    }
    train = splits.get("train")
    if train is not None and train.images is not None and len(train.images):
        record.update(_channel_stats(train.images))
    return record


def fingerprint_changes(before: Mapping[str, Any] | None, now: Mapping[str, Any] | None) -> list[str]:
    """What differs between two fingerprints, in words (empty when equal or when either is missing)."""
    if not before or not now:
        return []
    changes = []
    for split, digest in (before.get("split_sha256") or {}).items():
        current = (now.get("split_sha256") or {}).get(split)
        if current is not None and current != digest:
            changes.append(f"the {split} split's content")
    for key in ("splits", "class_counts"):
        old, new = before.get(key) or {}, now.get(key) or {}
        for split in sorted(set(old) & set(new)):
            if old[split] != new[split]:
                changes.append(f"{key.replace('_', ' ')} of {split}: {old[split]} -> {new[split]}")
    if not changes and before.get("content_sha256") != now.get("content_sha256"):
        changes.append("the content")
    return changes


def _size(content: SplitContent) -> int:
    return content.items if content.items is not None else len(content.checksums)


def _files_content(samples: list[tuple[str, int]], root: Path) -> SplitContent:
    """Files by relative path, size and label; the bytes of a fixed sample of them as well."""
    names = [_relative(path, root) for path, _ in samples]
    keyed = sorted(range(len(names)), key=lambda i: hash64(names[i]))
    sampled = set(keyed[:_SAMPLED_FILES])  # chosen by name, so the same files whatever the listing order
    checksums = np.empty(len(samples), dtype=np.uint64)
    for i, (path, label) in enumerate(samples):
        size = Path(path).stat().st_size
        body = hashlib.sha256(Path(path).read_bytes()).hexdigest() if i in sampled else ""
        checksums[i] = hash64(names[i], str(size), str(label), body)
    return SplitContent(checksums, np.array([label for _, label in samples], dtype=np.int64))


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return Path(path).name


def _channel_stats(images: np.ndarray) -> dict[str, Any]:
    """Per-channel mean and standard deviation in [0, 1] of up to ``_STATS_IMAGES`` evenly spaced images."""
    chosen = images[:: max(1, len(images) // _STATS_IMAGES)]
    channels = chosen.shape[-1]
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for start in range(0, len(chosen), 1000):  # float64 sums without a float copy of every image at once
        pixels = np.asarray(chosen[start : start + 1000], dtype=np.float64).reshape(-1, channels) / 255.0
        total += pixels.sum(axis=0)
        squares += (pixels * pixels).sum(axis=0)
        count += len(pixels)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return {
        "channel_mean": [round(float(v), 5) for v in mean],
        "channel_std": [round(float(v), 5) for v in std],
        "stats_images": len(chosen),
    }
