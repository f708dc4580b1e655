"""Lightning's profilers with zoo's defaults, for ``zoo fit --profile simple|advanced|pytorch``."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.profilers import AdvancedProfiler, Profiler, PyTorchProfiler, SimpleProfiler

from zoo.errors import ConfigError

__all__ = ["PROFILERS", "PYTORCH_SCHEDULE", "make_profiler"]

PROFILERS = ("simple", "advanced", "pytorch")
PYTORCH_SCHEDULE = {"wait": 1, "warmup": 1, "active": 3}  # five steps traced: small traces, warm kernels


def make_profiler(name: str, folder: str | Path) -> Profiler:
    """Lightning's profiler ``name`` writing into ``folder`` (the run folder).

    ``pytorch``: ``torch.profiler`` on a short schedule (wait 1, warm-up 1, active 3 steps, repeated once), the
    trace written by ``tensorboard_trace_handler`` to ``folder/profile`` (``tensorboard --logdir`` on the run
    folder shows it with the PyTorch profiler plugin) and a table of the top 20 operators by CPU time.

    Raises:
        ConfigError: For a name that is not one of :data:`PROFILERS`.
    """
    if name not in PROFILERS:
        raise ConfigError(f"--profile {name!r}: choose one of {', '.join(PROFILERS)}")
    folder = Path(folder)
    if name == "simple":
        return SimpleProfiler(dirpath=folder, filename="profile-simple")
    if name == "advanced":
        return AdvancedProfiler(dirpath=folder, filename="profile-advanced")
    trace_dir = folder / "profile"
    return PyTorchProfiler(
        dirpath=folder,
        filename="profile-pytorch",
        schedule=torch.profiler.schedule(**PYTORCH_SCHEDULE, repeat=1),
        on_trace_ready=torch.profiler.tensorboard_trace_handler(str(trace_dir)),
        sort_by_key="cpu_time_total" if not torch.cuda.is_available() else "cuda_time_total",
        row_limit=20,
        export_to_chrome=False,
    )
