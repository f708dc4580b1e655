"""The set-up check of image files: what it finds, and what it lets through."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.data.image_check import check_image_files, image_problem
from zoo.errors import DataError


def _encoded(kind: str) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format=kind, **({"progressive": True} if kind == "JPEG" else {}))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("whole.jpg", _encoded("JPEG"), None),
        ("trailer.jpg", _encoded("JPEG") + b"camera maker notes" * 20, None),  # bytes after the end are allowed
        ("whole.png", _encoded("PNG"), None),
        ("cut.jpg", _encoded("JPEG")[: len(_encoded("JPEG")) * 3 // 4], "no end-of-image marker"),
        ("cut.png", _encoded("PNG")[:-40], "no IEND chunk"),
        ("notes.jpg", b"not an image at all", "not a readable image"),
        ("empty.png", b"", "not a readable image"),
    ],
)
def test_image_problem(tmp_path: Path, name: str, content: bytes, problem: str | None) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    found = image_problem(path)
    assert found is None if problem is None else problem in found


def test_a_cut_image_that_decodes_partly_is_refused_before_any_is_read(tmp_path: Path) -> None:
    cut = _encoded("JPEG")[:-200]
    with pytest.raises(OSError, match="truncated"):  # what a batch would hit mid-epoch
        Image.open(io.BytesIO(cut)).load()
    paths = []
    for index in range(8):
        paths.append(str(tmp_path / "cat" / f"{index}.jpg"))
        Path(paths[-1]).parent.mkdir(exist_ok=True)
        Path(paths[-1]).write_bytes(cut if index in (2, 5) else _encoded("JPEG"))
    with pytest.raises(DataError, match=r"2 of 8 images under .* cannot be used: cat/2\.jpg \(truncated.*cat/5\.jpg"):
        check_image_files(paths, tmp_path)
