"""Rebuild a zoo task from a checkpoint, safely: ``weights_only`` loading and an exact weight match."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch

from zoo.callbacks.checkpoint import check_checkpoint_file
from zoo.callbacks.metadata import METADATA_KEY
from zoo.weights import WeightsMismatchError, load_safely

__all__ = ["LoadedCheckpoint", "load_checkpoint"]


@dataclass
class LoadedCheckpoint:
    """A task rebuilt from a checkpoint, in eval mode on the CPU.

    Attributes:
        path: The checkpoint file.
        task: The task, holding the chosen weights.
        task_class: Import path of the task, e.g. ``"zoo.tasks.ImageClassifier"``.
        hparams: The task's init arguments as stored.
        metadata: What :class:`zoo.callbacks.CheckpointMetadata` recorded (empty when the run had none).
        weights: ``"ema"`` when the weights are an EMA average, ``"trained"`` otherwise.
    """

    path: Path
    task: L.LightningModule
    task_class: str
    hparams: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    weights: str = "trained"


def load_checkpoint(
    path: str | os.PathLike[str], task_class: str | None = None, weights: Literal["ema", "trained"] = "ema"
) -> LoadedCheckpoint:
    """Load ``path`` with ``torch.load(weights_only=True)`` and rebuild its task with exactly its weights.

    Args:
        path: A checkpoint written by ``zoo fit`` (or any Lightning run of a zoo task).
        task_class: Import path of the task when the checkpoint does not record it (library runs), e.g.
            ``"zoo.tasks.ImageClassifier"``; when it does, the two must agree.
        weights: ``"ema"`` takes the checkpoint's ``state_dict``, which is the EMA average when the run used
            ``zoo.callbacks.EMA`` (and the trained weights otherwise); ``"trained"`` takes the trained weights.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If it is truncated, needs arbitrary unpickling, names no (or a non-zoo) task, or holds
            no trained weights when ``weights="trained"`` is asked for.
        WeightsMismatchError: Listing the missing and unexpected keys when the weights do not fit the task.
    """
    path = check_checkpoint_file(path)
    raw = _load_weights_only(path)
    hparams = dict(raw.get("hyper_parameters") or {})
    recorded = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if task_class is not None and recorded is not None and task_class != recorded:
        raise ValueError(f"{path} holds a {recorded} checkpoint, not a {task_class} one")
    class_path = task_class or recorded
    if class_path is None:
        raise ValueError(
            f"{path} does not record its task class (it was not written by `zoo fit`); pass it, e.g. "
            "task_class='zoo.tasks.ImageClassifier' (`zoo export --task ...`)"
        )
    cls = _task_class(class_path)
    task = cls(**hparams)
    state = raw.get("state_dict")
    if state is None:
        raise ValueError(f"{path} holds no state_dict")
    is_average = "current_model_state" in raw
    if weights == "trained":
        if not is_average:
            raise ValueError(f"{path} was trained without EMA: its weights are the trained ones; use weights='ema'")
        state = raw["current_model_state"]
    _load_exactly(task, state, path)
    task.on_load_checkpoint(raw)
    return LoadedCheckpoint(
        path=path,
        task=task.eval(),
        task_class=class_path,
        hparams=hparams,
        metadata=dict(raw.get(METADATA_KEY) or {}),
        weights="ema" if is_average and weights == "ema" else "trained",
    )


def _load_weights_only(path: Path) -> dict[str, Any]:
    loaded = load_safely(path)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} is not a Lightning checkpoint (a {type(loaded).__name__}, not a dictionary)")
    return loaded


def _task_class(class_path: str) -> type[L.LightningModule]:
    module_name, _, name = class_path.rpartition(".")
    if module_name != "zoo.tasks" and not module_name.startswith("zoo.tasks."):
        raise ValueError(f"task class {class_path!r} is not a zoo task (zoo.tasks.*); export builds only zoo tasks")
    cls = getattr(import_module(module_name), name, None)
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)):
        raise ValueError(f"{class_path!r} is not a LightningModule")
    return cls


def _load_exactly(task: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = task.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    resized = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or resized:
        lines = [f"{path} does not fit {type(task).__name__}:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        for key in resized:
            lines.append(f"  {key}: checkpoint {tuple(state[key].shape)}, task {tuple(own[key].shape)}")
        raise WeightsMismatchError("\n".join(lines))
    task.load_state_dict(state)
