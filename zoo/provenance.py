"""What a run was made with: code, packages, machine, command, seed and settings, as plain data.

A number is only worth what one can say, months later, about how it was produced. :func:`run_environment`
gathers that once per run; ``zoo fit`` writes it to ``env.json`` beside ``config.yaml``, stores it in every
checkpoint and logs it to the tracker; the leaderboard rows and benchmark records are built from the same
parts (:func:`git_state`, :func:`packages`, :func:`hardware`). Everything here is cheap (a few ``git``
calls and file reads, about 0.1 s) and never fails a run: a fact that cannot be read is ``None``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["git_state", "hardware", "packages", "run_environment", "torch_build", "zoo_checkout"]

# Environment variables that change what a run computes or how fast; anything that looks like a secret is
# left out even when its name matches.
_VARIABLE_PREFIXES = ("ZOO_", "CUDA_", "NCCL_", "PYTORCH_", "TORCH_", "CUBLAS_", "SLURM_JOB_", "PL_")
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_SECRET = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
# Packages recorded whatever zoo's requirements say: the ones a figure most depends on.
_CORE_PACKAGES = ("torch", "lightning", "torchmetrics", "numpy")


def zoo_checkout() -> Path:
    """The zoo clone whose recipes, suites and results are used.

    The working directory if it is one, else the clone this package is installed from (``pip install -e .``).
    """
    here = Path.cwd()
    if (here / "benchmarks" / "suites").is_dir():
        return here
    return Path(__file__).resolve().parents[1]


def git_state(repo: str | os.PathLike[str]) -> dict[str, Any]:
    """The commit checked out in ``repo``, its branch, and whether (and how) tracked files differ from it.

    Changes under ``benchmarks/results/`` do not count: the benchmark runs append their own rows there, and a
    row is no less reproducible because an earlier row of the same session was written before it.

    Returns:
        ``{"commit", "branch", "dirty", "diff_sha256"}``: ``diff_sha256`` is the SHA-256 of ``git diff HEAD``
        (``None`` when clean), so two runs from the same dirty tree can be told apart from two different
        ones. All ``None`` outside a git repository or without git.
    """

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "branch": None, "dirty": None, "diff_sha256": None}
    pathspec = ("--", ":/", ":(top,exclude)benchmarks/results")
    status = git("status", "--porcelain", "--untracked-files=no", *pathspec)
    dirty = None if status is None else bool(status)
    diff = git("diff", "HEAD", *pathspec) if dirty else None
    return {
        "commit": commit,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": dirty,
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
    }


def hardware() -> dict[str, Any]:
    """Where the figures were measured: CPU, threads, memory, GPUs, and the main library versions.

    ``cpu`` is the architecture (the leaderboard groups rows by it), ``cpu_model`` the processor's name.
    """
    import torch

    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "memory_gb": _memory_gb(),
        "torch": torch.__version__,
        "lightning": _version("lightning"),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        properties = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
        info["gpu"] = properties[0].name
        info["gpus"] = [{"name": p.name, "memory_gb": round(p.total_memory / 2**30, 1)} for p in properties]
        info["cuda"] = str(torch.version.cuda)
    return info


def torch_build() -> dict[str, Any]:
    """PyTorch's version and the CUDA, cuDNN and NCCL it was built with (``None`` where absent)."""
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    nccl = None
    if torch.cuda.is_available() and hasattr(torch.cuda, "nccl"):
        try:
            nccl = ".".join(str(part) for part in torch.cuda.nccl.version())
        except (RuntimeError, AttributeError):
            nccl = None
    return {"version": torch.__version__, "cuda": torch.version.cuda, "cudnn": cudnn, "nccl": nccl}


def packages() -> dict[str, str | None]:
    """Versions of every package zoo requires, its extras included (``None``: not installed)."""
    return {name: _version(name) for name in ("lightning-zoo", *_required_packages())}


def run_environment(
    seed: int | None = None, argv: list[str] | None = None, repo: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Everything about a run that is not in its config: code, packages, machine, command, seed, variables.

    Args:
        seed: The run's seed (``None``: the run was not seeded, which :mod:`zoo.report` flags).
        argv: The command line (default ``sys.argv``).
        repo: Where the user's code lives, for its git state (default: the working directory).

    Returns:
        Plain data: ``{"created", "command", "cwd", "seed", "git", "zoo", "python", "platform", "hostname",
        "hardware", "torch", "packages", "variables"}``. ``zoo`` holds zoo's version, where it was imported
        from and, for a source checkout other than ``repo``, that checkout's git state.
    """
    import zoo

    here = Path(repo or Path.cwd()).resolve()
    source = Path(zoo.__file__).resolve().parent.parent
    project = git_state(here)
    zoo_git = None
    if (source / ".git").exists() and not here.is_relative_to(source):
        zoo_git = git_state(source)
    record = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv if argv is None else argv),
        "cwd": str(Path.cwd()),
        "seed": seed,
        "git": project,
        "zoo": {"version": zoo.__version__, "path": str(source), "git": zoo_git},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "hardware": hardware(),
        "torch": torch_build(),
        "packages": packages(),
        "variables": _variables(),
    }
    # Plain data only (``torch.__version__`` is a str subclass): checkpoints load with weights_only=True.
    return json.loads(json.dumps(record, default=str))


def _variables() -> dict[str, str]:
    chosen = {
        name: value
        for name, value in os.environ.items()
        if (name.startswith(_VARIABLE_PREFIXES) or name in _THREAD_VARIABLES) and not _SECRET.search(name)
    }
    return dict(sorted(chosen.items()))


@cache
def _required_packages() -> tuple[str, ...]:
    """The distribution names in zoo's requirements (extras included), core ones first, without duplicates."""
    try:
        requirements = metadata.requires("lightning-zoo") or []
    except metadata.PackageNotFoundError:
        requirements = []
    names = [re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0] for requirement in requirements]
    names = [name for name in names if name and name != "lightning-zoo"]
    return tuple(dict.fromkeys([*_CORE_PACKAGES, *names]))


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None
