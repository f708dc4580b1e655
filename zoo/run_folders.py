"""Where a run's logs, config and checkpoints go, and which checkpoint ``last`` and ``best`` name.

Every ``zoo fit`` writes one run folder, ``<root>/<name>/version_N``: ``root`` is ``runs/`` (or the
``--trainer.default_root_dir`` a user gives), ``name`` comes from the recipe (``cifar10/resnet18`` for
``recipes/cifar10/resnet18.yaml``). The same layout holds with or without a logger, so ``--ckpt_path last``
and ``best`` find the checkpoints of a run whichever way it was started.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from zoo.checkpoints import load_safely
from zoo.errors import MissingFileError

__all__ = ["RUNS_DIR", "RunPlace", "run_name", "under_root"]

RUNS_DIR = "runs"
_VERSION = re.compile(r"version_(\d+)$")


@dataclass(frozen=True)
class RunPlace:
    """The folder that holds every run of one recipe: ``root / name``, one ``version_*`` folder per run."""

    root: Path
    name: str

    @property
    def folder(self) -> Path:
        """``root / name``."""
        return self.root / self.name

    def next_version(self) -> str:
        """``version_N`` with ``N`` one above the highest taken (as the TensorBoard logger numbers its runs)."""
        taken = [int(m.group(1)) for p in self._runs() if (m := _VERSION.match(p.name))]
        return f"version_{max(taken, default=-1) + 1}"

    def holds(self, checkpoint: Path) -> Path | None:
        """The run folder of this place that wrote ``checkpoint`` (``<run>/checkpoints/x.ckpt``), else ``None``."""
        run = checkpoint.resolve().parent.parent
        if checkpoint.resolve().parent.name == "checkpoints" and run.parent == self.folder.resolve():
            return run
        return None

    def newest_last(self) -> Path | None:
        """The most recently written ``last*.ckpt`` of any run here."""
        found = [p for run in self._runs() for p in (run / "checkpoints").glob("last*.ckpt")]
        return max(found, key=lambda p: p.stat().st_mtime, default=None)

    def newest_best(self) -> Path:
        """The best checkpoint, as its checkpoint callback recorded it, of the newest run that has checkpoints.

        The best path is read from the run's newest checkpoint file (every one carries the callback's state);
        a path recorded relative to another working directory, or in a run folder since moved, is found by
        its name in the run's ``checkpoints`` folder.

        Raises:
            MissingFileError: Naming the folder searched when no run has checkpoints or none recorded a best.
        """
        files = [p for run in self._runs() for p in (run / "checkpoints").glob("*.ckpt")]
        if not files:
            raise MissingFileError(
                f"--ckpt_path best: no checkpoints under {self.folder}/version_*/checkpoints; train with `zoo fit` "
                "first, or pass the path of a checkpoint"
            )
        newest = max(files, key=lambda p: (p.stat().st_mtime, p.name.startswith("last")))
        recorded = [
            state["best_model_path"]
            for state in (load_safely(newest, mmap=True).get("callbacks") or {}).values()
            if isinstance(state, dict) and state.get("best_model_path")
        ]
        for path in recorded:
            for candidate in (newest.parent / Path(path).name, Path(path)):
                if candidate.is_file():
                    return candidate
        raise MissingFileError(
            f"--ckpt_path best: the newest run's checkpoint {newest} records no best checkpoint that still exists "
            f"(recorded: {recorded or 'none'}); pass the path of a checkpoint"
        )

    def _runs(self) -> list[Path]:
        return [p for p in self.folder.glob("*") if p.is_dir()] if self.folder.is_dir() else []


def run_name(config: Any) -> str:
    """The run's name: the recipe's path below ``recipes/`` (else its stem), else ``zoo``.

    ``cifar10/resnet18`` for ``recipes/cifar10/resnet18.yaml``: a recipe's folder names its dataset. A recipe
    run on other data (``recipes/cora/gcn.yaml --data.init_args.name PubMed``) is named after the data it used,
    as its data module names it (``ZooDataModule.dataset_name``): ``pubmed/gcn``, so its runs are not filed with
    the recipe's own.
    """
    configs = config.get("config") or []
    if not configs:
        return "zoo"
    path = Path(os.fspath(configs[-1]))  # jsonargparse's Path gives the absolute path
    parts = path.with_suffix("").parts
    if "recipes" not in parts:
        return path.stem
    name = Path(*parts[len(parts) - parts[::-1].index("recipes") :])
    used = _dataset_used(config.get("data"))
    if used is not None and len(name.parts) > 1 and name.parts[-2] != used:
        name = name.parent.parent / used / name.name
    return name.as_posix()


def _dataset_used(data: Any) -> str | None:
    """The data module's name for the dataset its arguments select, or ``None`` when it does not say."""
    if data is None or not data.get("class_path"):
        return None
    module, _, attribute = str(data["class_path"]).rpartition(".")
    try:
        name_of = getattr(import_module(module), attribute).dataset_name
    except (ImportError, AttributeError, ValueError):
        return None
    return name_of(data.get("init_args") or {})


def under_root(path: str | os.PathLike[str] | None) -> Path:
    """The folder runs go under: ``path`` when given, else ``runs/``."""
    return Path(path) if path else Path(RUNS_DIR)
