"""What every task does with the backbone it is given: record its arguments and check a named one's task."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from zoo.registry import ModelEntry, model_info

__all__ = ["entry_for_task", "save_task_hyperparameters"]


def save_task_hyperparameters(task: Any, backbone: str | nn.Module) -> str:
    """Save the calling ``__init__``'s arguments as hyperparameters and return the backbone's display name.

    Optimizer and scheduler factories are left out, and so is a backbone given as a module: neither can be
    stored without pickling code, and checkpoints must load with ``torch.load(weights_only=True)``.
    (Under ``zoo fit`` the hyperparameters are the parsed recipe instead, which is plain data.)
    """
    ignore = ["optimizer", "lr_scheduler"] + (["backbone"] if isinstance(backbone, nn.Module) else [])
    frame = inspect.currentframe()
    task.save_hyperparameters(ignore=ignore, frame=frame.f_back if frame is not None else None)
    return backbone if isinstance(backbone, str) else type(backbone).__name__


def entry_for_task(name: str, task: str) -> ModelEntry:
    """The registry entry of ``name``, which must serve ``task``.

    Raises:
        ValueError: Naming the model's family and tasks when it does not serve ``task``.
    """
    entry = model_info(name)
    if task not in entry.tasks:
        raise ValueError(f"{name!r} is a {entry.family} model for {entry.tasks}, not {task.replace('_', ' ')}")
    return entry
