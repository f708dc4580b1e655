"""Check that a pickle-based data file holds data, not code, before a library opens it with plain ``pickle``.

A pickle names functions to call while it is read, so a data folder holding a crafted pickle runs its code in
whatever process opens it. Some data sets are distributed as pickles and read by libraries with plain
``pickle.load``: Planetoid's raw ``ind.<name>.*`` files (PyG) and CIFAR's ``cifar-10-batches-py`` (torchvision).
zoo reads each such file first with an unpickler that admits only the few types those files hold (NumPy
arrays, SciPy sparse matrices, lists, dicts); a file that names anything else is refused, naming the file
and what it asked for. Checking the very bytes the library reads next (a copy in zoo's cache, or a file zoo
does not write) leaves nothing for it to run.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zoo.errors import DataError

__all__ = ["CONTAINER_GLOBALS", "NUMPY_GLOBALS", "SCIPY_SPARSE_GLOBALS", "UnsafePickleError", "check_pickle"]

# What NumPy arrays need to be rebuilt, under the module names NumPy 1 and 2 (and Python 2 pickles) use.
NUMPY_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }
)
SCIPY_SPARSE_GLOBALS = frozenset(
    {("scipy.sparse.csr", "csr_matrix"), ("scipy.sparse._csr", "csr_matrix"), ("scipy.sparse._csr", "csr_array")}
)
# Lists, dicts and the generic rebuilders older pickle protocols use (they build only admitted types).
CONTAINER_GLOBALS = frozenset(
    {
        ("__builtin__", "list"),
        ("builtins", "list"),
        ("__builtin__", "dict"),
        ("builtins", "dict"),
        ("__builtin__", "object"),
        ("builtins", "object"),
        ("collections", "defaultdict"),
        ("collections", "OrderedDict"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),
    }
)


class UnsafePickleError(DataError):
    """A data file is a pickle that names code beyond the data types its format holds."""


class _DataOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, allowed: frozenset[tuple[str, str]], path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self.allowed = allowed
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.allowed:
            raise UnsafePickleError(
                f"{self.path} is a pickle that asks to import {module}.{name}, which a data file of this kind never "
                "needs; zoo refuses to open it, since reading a pickle runs the code it names. Replace the file "
                "with one from the data set's official source."
            )
        return super().find_class(module, name)


def check_pickle(path: str | Path, allowed: Iterable[tuple[str, str]]) -> None:
    """Read ``path`` with an unpickler that admits only the ``(module, name)`` pairs in ``allowed``.

    Raises:
        UnsafePickleError: Naming the file and the first global it asks for outside ``allowed``.
        ValueError: If the file is not a readable pickle (truncated, or another format), naming it.
    """
    path = Path(path)
    with path.open("rb") as f:
        try:
            _DataOnlyUnpickler(f, frozenset(allowed), path).load()
        except UnsafePickleError:
            raise
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            raise DataError(f"{path} is not a readable pickle ({reason}); is it truncated?") from err
