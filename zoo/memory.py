"""This process's memory: resident now, its peak within a block, and the heap in use."""

from __future__ import annotations

import ctypes
import resource
import threading
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["PeakResidentMemory", "heap_in_use_mb", "peak_resident_mb", "resident_mb"]


class PeakResidentMemory:
    """Peak resident memory of this process within a ``with`` block, in MiB.

    The kernel's own peak (``ru_maxrss``) never resets, so in a process that runs several recipes it would give
    each run the peak of all before it; this samples the current resident size every ``interval`` seconds on a
    background thread instead (a small file read on Linux; elsewhere it falls back to ``ru_maxrss``).
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> PeakResidentMemory:
        self.peak_mb = resident_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, resident_mb())

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, resident_mb())


def resident_mb() -> float:
    """Resident memory of this process now, in MiB (the kernel's peak where ``/proc`` is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_resident_mb()
    return pages * resource.getpagesize() / 2**20


def peak_resident_mb() -> float:
    """The kernel's peak resident memory of this process since it started, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip


@cache
def _mallinfo2() -> Any:
    try:
        function = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):  # not glibc, or glibc before 2.33
        return None
    function.restype = _MallInfo2
    return function


def heap_in_use_mb() -> float | None:
    """Bytes the C heap has handed out and not taken back, in MiB (glibc's ``mallinfo2``; ``None`` elsewhere).

    Unlike the resident size, this grows when memory is kept even if freed memory was there to reuse, and
    falls when it is freed: what a leak check needs. PyTorch's CPU tensors are allocated there.
    """
    info = _mallinfo2()
    if info is None:
        return None
    counts = info()
    return (counts.uordblks + counts.hblkhd) / 2**20
