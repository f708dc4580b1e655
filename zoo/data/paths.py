"""Where data is read from and where derived files are written.

Every data module reads its data under ``root``. When ``root`` is not given it defaults to ``$ZOO_DATA`` if
that is set, else ``~/.cache/zoo``. Data folders are read as they are and never written into: decoded
caches, processed files and downloads go under :func:`cache_dir` (``$ZOO_CACHE``, else ``~/.cache/zoo``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "data_root"]

_DEFAULT = Path("~/.cache/zoo")


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder to read data from: ``root``, else ``$ZOO_DATA``, else ``~/.cache/zoo``."""
    if root is None:
        root = os.environ.get("ZOO_DATA") or _DEFAULT
    return Path(root).expanduser()


def cache_dir(*parts: str) -> Path:
    """A folder under ``$ZOO_CACHE`` (else ``~/.cache/zoo``) for derived files, created on demand."""
    path = Path(os.environ.get("ZOO_CACHE") or _DEFAULT).expanduser().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
