"""Writing files so that a reader sees either the old file or the whole new one, with the user's permissions.

Checkpoints, decoded-data caches and trained tokenizers are all written this way: to a temporary file beside
the target, optionally fsynced, renamed into place (atomic on POSIX and Windows), then, when asked, the rename
itself made durable by an fsync of the folder. ``tempfile.mkstemp`` creates files readable by their owner only;
the finished file gets the mode the user's umask gives any new file (so teammates sharing a runs folder can
read checkpoints when the umask says they may).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "cache_dir", "default_file_mode"]

_CACHE_DEFAULT = Path("~/.cache/zoo")


def cache_dir(*parts: str) -> Path:
    """A folder under ``$ZOO_CACHE`` (else ``~/.cache/zoo``) for derived files, created on demand."""
    path = Path(os.environ.get("ZOO_CACHE") or _CACHE_DEFAULT).expanduser().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_write(target: str | os.PathLike[str], text: bool = False, durable: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``target`` for writing; on success, give it ``target``'s name.

    Args:
        target: The file to (re)place; its folder is created.
        text: Open in UTF-8 text mode instead of binary.
        durable: fsync the file before the rename and the folder after it, so the new file survives a crash
            of the machine (checkpoints); caches that can be rebuilt skip it.

    Yields:
        The open temporary file. If the block raises, it is deleted and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_directory(target.parent)


def default_file_mode() -> int:
    """The mode a new file gets under the process's umask (``0o644`` under the usual ``022``)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux reports it (``os.umask`` sets to read)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def _fsync_directory(folder: Path) -> None:
    """Persist a rename (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
