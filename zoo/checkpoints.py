"""The one home of a zoo checkpoint: check the file, load it safely, read its metadata, rebuild its task.

Every command that opens a checkpoint (``zoo fit --ckpt_path``, ``zoo generate``, ``zoo sample``,
``zoo export``, ``zoo.load_weights``, the leaderboard) goes through here, so they all refuse the same bad
files with the same messages:

* :func:`check_file`: missing, truncated or damaged files (a member whose bytes no longer match the CRC-32
  written with them) are named before anything is unpickled;
* :func:`load_safely`: ``torch.load(weights_only=True)``, never a silent fallback to full unpickling;
* :class:`ZooMetadata`: what a checkpoint says about itself (data facts, recipe, metrics), typed;
* :func:`load_checkpoint`: the task rebuilt from its stored arguments, holding exactly the stored weights;
* :func:`check_weights_fit`: the one report of missing, unexpected and resized weights.

A checkpoint is a Lightning checkpoint: ``state_dict`` (the EMA average when the run kept one, with the
trained weights under ``current_model_state``), ``hyper_parameters`` (the task's arguments; under ``zoo fit``
with the task's import path as ``_class_path``) and ``zoo_metadata`` (plain data, see :class:`ZooMetadata`).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Literal

import torch

from zoo.data.facts import DataFacts
from zoo.errors import CheckpointError, MissingFileError

__all__ = [
    "METADATA_KEY",
    "BestScore",
    "LoadedCheckpoint",
    "RecipeRecord",
    "WeightsMismatchError",
    "ZooMetadata",
    "check_file",
    "check_weights_fit",
    "damaged_member",
    "load_checkpoint",
    "load_safely",
    "read_checkpoint",
]

METADATA_KEY = "zoo_metadata"
PRUNING_KEY = "zoo_pruning"  # how zoo.callbacks.Prune pruned the weights; export removes pruned channels
TASK_PACKAGE = "zoo.tasks"


class WeightsMismatchError(CheckpointError):
    """Raised when weights do not fit a model; the message lists missing, unexpected and resized keys."""


def check_file(path: str | os.PathLike[str]) -> Path:
    """Fail early, naming the file, when ``path`` is missing, truncated or damaged.

    A torch checkpoint is a zip archive whose central directory is written last, so a truncated file is
    recognised without unpickling anything; and ``torch.save`` writes each member's CRC-32, so bytes changed
    after saving (a flipped bit on disk, a bad copy) are found by reading the file once, before any weight
    silently changes a result.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is truncated, not a checkpoint, or damaged (naming the member and the tensors in it).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        size = path.stat().st_size
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a torch checkpoint ({size} bytes, no zip directory at its "
            "end); resume from another checkpoint, e.g. the best one beside it"
        )
    damaged = damaged_member(path)
    if damaged is not None:
        tensors = _tensors_in_member(path, damaged)
        held = f" (it holds {', '.join(tensors[:5])}{', ...' if len(tensors) > 5 else ''})" if tensors else ""
        raise CheckpointError(
            f"checkpoint {path} is damaged: the bytes of its member {damaged!r}{held} no longer match the CRC-32 "
            "written with them, so the file changed after it was saved; use another checkpoint, e.g. the best "
            "one beside it"
        )
    return path


def damaged_member(path: str | os.PathLike[str]) -> str | None:
    """The first member of the zip archive ``path`` whose bytes fail their CRC-32, or ``None``.

    Checkpoints, TorchScript files and ``torch.export`` programs are all such archives.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except zipfile.BadZipFile as err:  # a damaged local header: the member cannot even be read
        return str(err)


def _tensors_in_member(path: Path, member: str) -> list[str]:
    """Where in the checkpoint the tensors stored in ``member`` are (``state_dict.backbone.stem.0.weight``).

    A member holds one storage; the loaded storage's bytes are the member's (damaged) bytes, so the tensors
    whose storage has the member's actual CRC-32 are the ones it holds. Used only to word an error.
    """
    try:
        actual = zlib.crc32(_stored_bytes(path, member))
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # the message is still right without the names
        return []
    found: list[str] = []

    def visit(value: Any, where: str) -> None:
        if isinstance(value, torch.Tensor):
            storage = torch.empty(0, dtype=torch.uint8).set_(value.untyped_storage())
            if zlib.crc32(storage.numpy().tobytes()) == actual:
                found.append(where)
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(item, f"{where}.{key}" if where else str(key))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                visit(item, f"{where}[{index}]")

    visit(loaded, "")
    return found


def _stored_bytes(path: Path, member: str) -> bytes:
    """A stored (uncompressed) member's bytes as they are on disk, without the CRC check ``ZipFile.read`` does."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    with path.open("rb") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        f.seek(info.header_offset + 30 + name_length + extra_length)
        return f.read(info.compress_size)


def load_safely(path: str | os.PathLike[str], map_location: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``, refusing with the reason what needs more.

    ``mmap=True`` maps the tensors instead of reading them, for callers that want only the small parts.

    Raises:
        ValueError: If the file holds objects that only arbitrary unpickling can rebuild: zoo never loads
            those, so that opening a checkpoint cannot run code.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"checkpoint {path} holds objects that only arbitrary unpickling can rebuild, and zoo loads "
                "checkpoints with weights_only=True so that opening a file cannot run code. Re-save it from the "
                f"code that wrote it with plain tensors and numbers. ({str(err).splitlines()[0]})"
            ) from err
        raise


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked, safely loaded checkpoint dictionary (tensors on the CPU).

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If it is truncated, needs arbitrary unpickling, or is not a dictionary.
    """
    path = check_file(path)
    loaded = load_safely(path)
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (a {type(loaded).__name__}, not a dictionary)")
    return loaded


@dataclass(frozen=True)
class RecipeRecord:
    """The recipe a run came from: its path(s), the resolved configuration as YAML, and that text's SHA-256."""

    path: str | None
    text: str
    sha256: str


@dataclass(frozen=True)
class BestScore:
    """The best value of the monitored metric when the checkpoint was written."""

    monitor: str | None
    score: float


@dataclass(frozen=True)
class ZooMetadata:
    """What a checkpoint records about itself under ``checkpoint["zoo_metadata"]``, as plain data.

    Attributes:
        zoo_version: The zoo version that wrote it (``None`` for checkpoints of plain Lightning runs).
        data: The data's facts (labels, normalisation, tokenizer, ...); empty when the run recorded none.
        recipe: The resolved recipe, under ``zoo fit``.
        metrics: The last logged scalar metrics.
        best: The best monitored score so far.
        environment: What the run was made with (:func:`zoo.provenance.run_environment`), under ``zoo fit``.
        data_fingerprint: What the run read (:meth:`zoo.data.ZooDataModule.fingerprint`), when the data module
            reports it.
        calibration: The temperature ``zoo evaluate --calibrate`` fitted (``{"temperature": T, ...}``), which
            the task's probabilities divide the logits by.
    """

    zoo_version: str | None = None
    data: DataFacts = field(default_factory=DataFacts)
    recipe: RecipeRecord | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    best: BestScore | None = None
    environment: Mapping[str, Any] | None = None
    data_fingerprint: Mapping[str, Any] | None = None
    calibration: Mapping[str, Any] | None = None

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any] | None) -> ZooMetadata:
        """Read what :meth:`to_dict` (or an earlier zoo version) stored; missing parts are left empty."""
        stored = dict(stored or {})
        recipe, best = stored.get("recipe"), stored.get("best")
        return cls(
            zoo_version=stored.get("zoo_version"),
            data=DataFacts.from_dict(stored.get("data")),
            recipe=RecipeRecord(recipe.get("path"), recipe["text"], recipe["sha256"]) if recipe else None,
            metrics={str(k): float(v) for k, v in (stored.get("metrics") or {}).items()},
            best=BestScore(best.get("monitor"), float(best["score"])) if best else None,
            environment=stored.get("environment"),
            data_fingerprint=stored.get("data_fingerprint"),
            calibration=stored.get("calibration"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as stored in the checkpoint."""
        recipe = None if self.recipe is None else vars(self.recipe).copy()
        best = None if self.best is None else vars(self.best).copy()
        return {
            "zoo_version": self.zoo_version,
            "data": self.data.to_dict(),
            "recipe": recipe,
            "metrics": dict(self.metrics),
            "best": best,
            "environment": None if self.environment is None else dict(self.environment),
            "data_fingerprint": None if self.data_fingerprint is None else dict(self.data_fingerprint),
            "calibration": None if self.calibration is None else dict(self.calibration),
        }


def check_weights_fit(
    own: Mapping[str, torch.Tensor],
    stored: Mapping[str, torch.Tensor],
    source: str | os.PathLike[str],
    target: str,
    ignore_missing: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Raise :class:`WeightsMismatchError` listing every difference between two state dicts.

    Args:
        own: The model's state dict.
        stored: The weights read from ``source``.
        source: Where ``stored`` came from, for the message.
        target: What they were loaded into (a class name), for the message.
        ignore_missing: Keys the model may keep although ``stored`` lacks them (tied weights stored once, a
            new classifier head).
    """
    missing = sorted(set(own) - set(stored) - set(ignore_missing))
    unexpected = sorted(set(stored) - set(own))
    resized = sorted(k for k in set(own) & set(stored) if own[k].shape != stored[k].shape)
    if not (missing or unexpected or resized):
        return
    lines = [f"weights in {source} do not fit {target}:"]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    for key in resized:
        lines.append(f"  {key}: {tuple(stored[key].shape)} in the file, {tuple(own[key].shape)} in the model")
    raise WeightsMismatchError("\n".join(lines))


@dataclass
class LoadedCheckpoint:
    """A task rebuilt from a checkpoint, in eval mode.

    Attributes:
        path: The checkpoint file.
        task: The task, holding the chosen weights.
        task_class: Import path of the task, e.g. ``"zoo.tasks.ImageClassifier"``.
        hparams: The task's init arguments as stored.
        metadata: What the checkpoint records about itself (empty parts when the run recorded nothing).
        weights: ``"ema"`` when the weights are an EMA average, ``"trained"`` otherwise.
        pruning: How ``zoo.callbacks.Prune`` pruned the weights (``method``, ``sparsity``, ...), or ``None``.
        epoch: The epoch the checkpoint was written in (0-based), as Lightning records it.
        global_step: Optimizer steps taken when it was written.
    """

    path: Path
    task: Any
    task_class: str
    hparams: dict[str, Any]
    metadata: ZooMetadata = field(default_factory=ZooMetadata)
    weights: str = "trained"
    pruning: Mapping[str, Any] | None = None
    epoch: int = 0
    global_step: int = 0


def load_checkpoint(
    path: str | os.PathLike[str],
    task_class: str | None = None,
    weights: Literal["ema", "trained"] = "ema",
    device: str | torch.device = "cpu",
) -> LoadedCheckpoint:
    """Load ``path`` with ``torch.load(weights_only=True)`` and rebuild its task with exactly its weights.

    Args:
        path: A checkpoint written by ``zoo fit`` (or any Lightning run of a zoo task).
        task_class: Import path of the task when the checkpoint does not record it (library runs), e.g.
            ``"zoo.tasks.ImageClassifier"``; when it does, the two must agree.
        weights: ``"ema"`` takes the checkpoint's ``state_dict``, which is the EMA average when the run used
            ``zoo.callbacks.EMA`` (and the trained weights otherwise); ``"trained"`` takes the trained weights.
        device: Where the rebuilt task goes.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If it is truncated, needs arbitrary unpickling, names no (or a non-zoo) task, or holds
            no trained weights apart from the EMA ones when ``weights="trained"`` is asked for.
        WeightsMismatchError: Listing the missing, unexpected and resized keys when the weights do not fit.
    """
    path = Path(path)
    raw = read_checkpoint(path)
    hparams = dict(raw.get("hyper_parameters") or {})
    recorded = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if task_class is not None and recorded is not None and task_class != recorded:
        raise CheckpointError(f"{path} holds a {recorded} checkpoint, not a {task_class} one")
    class_path = task_class or recorded
    if class_path is None:
        raise CheckpointError(
            f"{path} does not record its task class (it was not written by `zoo fit`); pass it, e.g. "
            "task_class='zoo.tasks.ImageClassifier' (`zoo export --task ...`)"
        )
    task = _task_class(class_path)(**_for_rebuilding(hparams))
    state = raw.get("state_dict")
    if state is None:
        raise CheckpointError(f"{path} holds no state_dict")
    is_average = "current_model_state" in raw
    if weights == "trained":
        if not is_average:
            raise CheckpointError(
                f"{path} was trained without EMA: its weights are the trained ones; use weights='ema'"
            )
        state = raw["current_model_state"]
    check_weights_fit(task.state_dict(), state, path, type(task).__name__)
    task.load_state_dict(state)
    task.on_load_checkpoint(raw)
    return LoadedCheckpoint(
        path=path,
        task=task.to(device).eval(),
        task_class=class_path,
        hparams=hparams,
        metadata=ZooMetadata.from_dict(raw.get(METADATA_KEY)),
        weights="ema" if is_average and weights == "ema" else "trained",
        pruning=raw.get(PRUNING_KEY),
        epoch=int(raw.get("epoch") or 0),
        global_step=int(raw.get("global_step") or 0),
    )


def _for_rebuilding(hparams: dict[str, Any]) -> dict[str, Any]:
    """``hparams`` without what only training needed.

    The weights a task started from (a card, a file): the checkpoint's own replace them, and rebuilding must not
    download a card's file nor fail because a fine-tuning run's starting file has moved. Activation
    checkpointing: a memory saving for the backward pass, which inference and export have no use for (and
    tracing through ``torch.utils.checkpoint`` is not what an exported graph should hold).
    """
    rebuilt = dict(hparams)
    if rebuilt.get("activation_checkpointing"):
        rebuilt["activation_checkpointing"] = False
    if rebuilt.get("pretrained") not in (None, False):
        rebuilt["pretrained"] = None
    extra = rebuilt.get("backbone_kwargs")
    if isinstance(extra, dict) and {"pretrained", "weights"} & set(extra):
        rebuilt["backbone_kwargs"] = {k: v for k, v in extra.items() if k not in ("pretrained", "weights")}
    return rebuilt


def _task_class(class_path: str) -> type:
    """The task class at ``class_path``; only zoo's own tasks are imported (a checkpoint names code to run)."""
    import lightning as L

    module_name, _, name = class_path.rpartition(".")
    if module_name != TASK_PACKAGE and not module_name.startswith(f"{TASK_PACKAGE}."):
        raise CheckpointError(
            f"task class {class_path!r} is not a zoo task ({TASK_PACKAGE}.*); zoo rebuilds only its own tasks"
        )
    cls = getattr(import_module(module_name), name, None)
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)):
        raise CheckpointError(f"{class_path!r} is not a LightningModule")
    return cls
