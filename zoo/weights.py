"""Load and save model weights: safetensors files and zoo checkpoints, with errors that list what differs."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from zoo.checkpoints import WeightsMismatchError, check_weights_fit, load_safely, read_checkpoint
from zoo.errors import MissingFileError

__all__ = ["WeightsMismatchError", "load_safely", "load_weights", "read_state_dict", "save_weights"]

_CHECKPOINT_PREFIX = "backbone."


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The network weights stored in ``path``.

    Accepts a ``.safetensors`` file (a plain state dict) or a zoo/Lightning checkpoint, read with
    ``torch.load(weights_only=True)``. From a checkpoint, the task's ``backbone.`` weights are taken: with the
    EMA callback those are the averaged weights, as export uses too.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is truncated, or a checkpoint that needs arbitrary unpickling (refused on purpose).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    loaded = read_checkpoint(path)
    state = loaded.get("state_dict", loaded)
    if any(key.startswith(_CHECKPOINT_PREFIX) for key in state):
        state = {k[len(_CHECKPOINT_PREFIX) :]: v for k, v in state.items() if k.startswith(_CHECKPOINT_PREFIX)}
    return state


def load_weights(model: nn.Module, path: str | os.PathLike[str], new_head: bool = True) -> nn.Module:
    """Load the weights in ``path`` into ``model`` and return it.

    Args:
        model: The network, e.g. from :func:`zoo.create_model`.
        path: A ``.safetensors`` file or a checkpoint (see :func:`read_state_dict`).
        new_head: When the file's classifier has another shape than the model's (fine-tuning to other classes),
            keep the model's freshly initialised classifier instead of failing. Needs ``get_classifier()``.

    Raises:
        WeightsMismatchError: Listing every missing, unexpected or differently shaped weight.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    resized = sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape)
    if resized and new_head and hasattr(model, "get_classifier"):
        head = {f"{name}" for name, _ in _named_state(model, model.get_classifier())}
        if set(resized) <= head:
            state = {k: v for k, v in state.items() if k not in head}
            resized = []
    tolerated = {k for k in set(own) - set(state) if _alias_present(k, own, state)}
    if new_head and hasattr(model, "get_classifier"):
        tolerated |= {name for name, _ in _named_state(model, model.get_classifier())}
    check_weights_fit(own, state, path, type(model).__name__, ignore_missing=tolerated)
    model.load_state_dict(state, strict=False)
    return model


def save_weights(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model``'s state dict as safetensors (tied weights stored once) and return the path."""
    from safetensors.torch import save_model

    from zoo.files import default_file_mode

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path))
    path.chmod(default_file_mode())  # safetensors writes owner-only; a shared or packaged file must be readable
    return path


def _alias_present(key: str, own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> bool:
    """Whether a weight tied to ``key`` (same storage, e.g. an output layer tied to an embedding) is in ``state``.

    safetensors stores tied weights once, under one of their names.
    """
    tensor = own[key]
    return any(
        other in state and other != key and t.data_ptr() == tensor.data_ptr() and t.shape == tensor.shape
        for other, t in own.items()
    )


def _named_state(model: nn.Module, part: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``model.state_dict()`` entries that belong to the submodule ``part``."""
    prefix = next((name for name, module in model.named_modules() if module is part), None)
    if prefix is None:
        return []
    return [(f"{prefix}.{k}" if prefix else k, v) for k, v in part.state_dict().items()]
