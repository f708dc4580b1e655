"""zoo: a Lightning-based modular model zoo.

The public entry points are resolved lazily so that ``import zoo`` costs milliseconds: torch, Lightning,
timm and the heavier family dependencies (transformers, diffusers, torch_geometric) load only when the
first model, task or data module is touched.

Example:
    >>> import zoo
    >>> model = zoo.create_model("resnet18_cifar", num_classes=100)
    >>> zoo.list_models(family="cnn")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY_ATTRIBUTES = {
    "create_model": "zoo.registry",
    "list_models": "zoo.registry",
    "model_info": "zoo.registry",
    "register_model": "zoo.registry",
    "InputSpec": "zoo.registry",
    "ModelEntry": "zoo.registry",
    "UnknownModelError": "zoo.registry",
    "load_checkpoint": "zoo.checkpoints",
    "load_weights": "zoo.weights",
    "save_weights": "zoo.weights",
    "WeightsMismatchError": "zoo.checkpoints",
}
_LAZY_SUBMODULES = ("callbacks", "checkpoints", "data", "models", "optim", "registry", "tasks", "weights")

if TYPE_CHECKING:
    from zoo.checkpoints import WeightsMismatchError, load_checkpoint
    from zoo.registry import (
        InputSpec,
        ModelEntry,
        UnknownModelError,
        create_model,
        list_models,
        model_info,
        register_model,
    )
    from zoo.weights import load_weights, save_weights

__all__ = [
    "InputSpec",
    "ModelEntry",
    "UnknownModelError",
    "WeightsMismatchError",
    "__version__",
    "create_model",
    "list_models",
    "load_checkpoint",
    "load_weights",
    "model_info",
    "register_model",
    "save_weights",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRIBUTES:
        return getattr(import_module(_LAZY_ATTRIBUTES[name]), name)
    if name in _LAZY_SUBMODULES:
        return import_module(f"zoo.{name}")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_LAZY_SUBMODULES])
