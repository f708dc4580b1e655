"""Where data is read from and where derived files are written.

Every data module reads its data under ``root``. When ``root`` is not given it defaults to ``$ZOO_DATA`` if
that is set, else ``~/.cache/zoo``. Data folders are read as they are and never written into: decoded
caches, processed files and downloads go under :func:`cache_dir` (``$ZOO_CACHE``, else ``~/.cache/zoo``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zoo.files import cache_dir

__all__ = ["cache_dir", "cache_lock", "data_root"]

_DEFAULT = Path("~/.cache/zoo")


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder to read data from: ``root``, else ``$ZOO_DATA``, else ``~/.cache/zoo``."""
    if root is None:
        root = os.environ.get("ZOO_DATA") or _DEFAULT
    return Path(root).expanduser()


@contextmanager
def cache_lock(entry: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache entry ``entry`` (a ``.lock`` file beside it) while it is filled.

    Every DDP rank creates its data module and may find a cache entry missing at the same moment; under the
    lock the first one fills it and the others wait, then find it complete, so no two processes ever write
    the same file (``filelock``: ``fcntl`` locks on POSIX, ``msvcrt`` on Windows).
    """
    from filelock import FileLock

    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry.parent / f".{entry.name}.lock")):
        yield
