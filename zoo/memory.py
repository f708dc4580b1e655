"""This process's resident memory: now, and its peak within a block."""

from __future__ import annotations

import resource
import threading
from pathlib import Path

__all__ = ["PeakResidentMemory", "resident_mb"]


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
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    return pages * resource.getpagesize() / 2**20
