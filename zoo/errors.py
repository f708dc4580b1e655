"""The errors zoo raises for what a user gave it: a value, a file, a checkpoint, a missing extra.

Each message names its subject (the file, key or value) and what would do instead. Every ``zoo`` command
prints such an error in a line or two and exits with status 2, as argparse does for a bad option; any other
exception is a bug and keeps its traceback. Each class is also the built-in exception it specialises
(``ValueError``, ``FileNotFoundError``, ...), so code that caught those before still does.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "IncompatibleError",
    "MissingExtraError",
    "MissingFileError",
    "StorageError",
    "UsageError",
    "ZooError",
    "find_user_error",
]


class ZooError(Exception):
    """Something a user gave zoo cannot be used as it is; the message says what and what would do."""


class ConfigError(ZooError, ValueError):
    """A value, or a combination of values, in a recipe, a command line or a call."""


class DataError(ZooError, ValueError):
    """A data file or folder whose content cannot be used (the message names the file)."""


class MissingFileError(ZooError, FileNotFoundError):
    """A file or folder that should exist does not."""


class CheckpointError(ZooError, ValueError):
    """A checkpoint or exported artifact that is truncated, damaged, unsafe to load, or of another task."""


class IncompatibleError(ZooError, TypeError):
    """Two things that do not fit together: a callback and a task, an argument a model does not take."""


class UsageError(ZooError, RuntimeError):
    """A call that cannot work in this setting or state (a strategy a callback does not support, a missing split)."""


class StorageError(ZooError, OSError):
    """A file could not be written (a full disk, a size limit, a read-only folder)."""


class MissingExtraError(ZooError, ImportError):
    """A command needs an optional dependency; the message gives the ``pip install`` line."""


def find_user_error(error: BaseException) -> ZooError | None:
    """``error`` itself, or the :class:`ZooError` that caused it (libraries such as jsonargparse wrap errors)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ZooError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
