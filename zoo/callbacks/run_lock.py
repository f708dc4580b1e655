"""One writer per run folder: a second `zoo fit` resuming into a folder that is still being trained is refused."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from zoo.errors import UsageError

__all__ = ["LOCK_FILE", "RunFolderLock", "check_run_folder"]

LOCK_FILE = "run.lock"


def check_run_folder(folder: str | os.PathLike[str]) -> None:
    """Refuse ``folder`` when another live process holds its lock; a lock whose process is gone is stale.

    A lock records the writer's pid, host and start time. On the same host a pid that no longer runs proves the
    writer gone (killed, crashed), and its lock is taken over; a lock from another host cannot be checked, so it
    is refused with the way to clear it.

    Raises:
        UsageError: Naming the folder, the writer's pid and host, and since when it writes.
    """
    lock = Path(folder) / LOCK_FILE
    try:
        owner = json.loads(lock.read_text())
    except (OSError, ValueError):
        return  # no lock, or a torn one: nobody is provably writing
    pid, host = int(owner.get("pid", -1)), str(owner.get("host", ""))
    if pid in (os.getpid(), os.getppid()) and host == socket.gethostname():
        return  # this run, or the rank-0 process that launched this DDP rank
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(owner.get("started", 0))))
    if host != socket.gethostname():
        raise UsageError(
            f"run folder {folder} is being written by zoo fit (pid {pid}) on host {host} since {since}; wait for it "
            f"to finish, or, if that job is gone, delete {lock}"
        )
    if _alive(pid):
        raise UsageError(
            f"run folder {folder} is being written by another zoo fit (pid {pid}, since {since}); wait for it to "
            "finish or stop it before resuming"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return pid > 0


class RunFolderLock(L.Callback):
    """Hold ``run.lock`` in the run folder while ``fit`` writes it; ``zoo fit`` adds it.

    Taken when fitting starts (after checking that no live process holds it) and released when fitting ends,
    normally or not; a lock left by a process that was killed is taken over by the next run on the host.
    """

    def __init__(self) -> None:
        self._held: Path | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.log_dir:
            self._acquire(Path(trainer.log_dir))

    @rank_zero_only
    def _acquire(self, folder: Path) -> None:
        check_run_folder(folder)
        folder.mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        (folder / LOCK_FILE).write_text(json.dumps(owner))
        self._held = folder / LOCK_FILE

    @override
    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._release()

    @override
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._release()

    def _release(self) -> None:
        if self._held is not None:
            self._held.unlink(missing_ok=True)
            self._held = None
