"""One registry for every model family.

A model is registered by decorating a builder function (timm style)::

    @register_model(family="cnn", tasks=("image_classification",), input_spec=InputSpec((3, 32, 32)))
    def resnet18_cifar(**kwargs) -> nn.Module: ...

and created by name with :func:`create_model`. Names with a library prefix are resolved on the fly:
``timm/<name>`` builds any timm model, so the registry does not copy timm's thousand entries.

Family modules are imported the first time the registry is listed or a name is looked up. They must keep
their module-level imports to torch alone and import transformers, diffusers or torch_geometric inside
builders, so that listing models never pays for a family that is not used.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from zoo.errors import ConfigError, IncompatibleError, ZooError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "FAMILIES",
    "TASKS",
    "InputSpec",
    "ModelEntry",
    "UnknownModelError",
    "create_model",
    "list_models",
    "model_info",
    "register_model",
]

FAMILIES = ("cnn", "transformer", "gnn", "diffusion")
TASKS = (
    "image_classification",
    "text_classification",
    "language_modeling",
    "node_classification",
    "graph_classification",
    "diffusion",
)

# Importing one of these registers that family's models.
_FAMILY_MODULES = {
    "cnn": "zoo.models.cnn",
    "transformer": "zoo.models.transformer",
    "gnn": "zoo.models.gnn",
    "diffusion": "zoo.models.diffusion",
}
# "<prefix>/<name>" is resolved by the module's `entry(name) -> ModelEntry`; `names(pattern)` lists its
# models and `has(name)` says whether it knows a name.
_PREFIX_PROVIDERS = {"timm": "zoo.models.timm_provider", "hf": "zoo.models.transformer.text_encoders"}

_REGISTRY: dict[str, ModelEntry] = {}
_PARAM_COUNTS: dict[str, int] = {}
_families_loaded = False


class UnknownModelError(ZooError, LookupError):
    """Raised for a model name that is not registered; the message suggests the closest names."""


@dataclass(frozen=True)
class InputSpec:
    """What one sample fed to a model looks like, without the batch dimension.

    Attributes:
        shape: Per-sample shape, e.g. ``(3, 32, 32)`` for a CIFAR image or ``(256,)`` for a token window.
        dtype: Element type name as torch spells it (``"float32"``, ``"int64"``).
    """

    shape: tuple[int, ...]
    dtype: str = "float32"

    def __str__(self) -> str:
        return "x".join(str(d) for d in self.shape) + f" {self.dtype}"


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it and what it is for.

    Attributes:
        name: Registry name, e.g. ``"resnet18_cifar"`` or ``"timm/resnet50"``.
        family: One of :data:`FAMILIES`.
        tasks: Tasks the model serves, from :data:`TASKS`.
        builder: Callable returning the ``nn.Module``; receives ``defaults`` updated by the user's overrides.
        input_spec: Default input of one sample.
        defaults: Keyword arguments the builder gets unless overridden (e.g. ``num_classes=10``).
        recipe: Path of the recipe that trains the model, relative to the repository root, if one exists.
        description: One line saying what the model is.
    """

    name: str
    family: str
    tasks: tuple[str, ...]
    builder: Callable[..., nn.Module] = field(repr=False, compare=False)
    input_spec: InputSpec
    defaults: Mapping[str, Any] = field(default_factory=dict)
    recipe: str | None = None
    description: str = ""

    @property
    def num_params(self) -> int:
        """Number of parameters at the default configuration (built once on the meta device, then cached)."""
        if self.name not in _PARAM_COUNTS:
            _PARAM_COUNTS[self.name] = _count_parameters(self)
        return _PARAM_COUNTS[self.name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary, as ``zoo models --json`` prints it."""
        return {
            "name": self.name,
            "family": self.family,
            "tasks": list(self.tasks),
            "num_params": self.num_params,
            "input_spec": {"shape": list(self.input_spec.shape), "dtype": self.input_spec.dtype},
            "defaults": dict(self.defaults),
            "recipe": self.recipe,
            "description": self.description,
        }


def register_model(
    builder: Callable[..., nn.Module] | None = None,
    *,
    family: str,
    tasks: tuple[str, ...],
    input_spec: InputSpec,
    name: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    recipe: str | None = None,
) -> Any:
    """Register a model builder; usable as ``@register_model(...)`` or ``register_model(fn, ...)``.

    Args:
        builder: Function that returns the model. Its name is the registry name unless ``name`` is given,
            and the first line of its docstring is the description.
        family: One of :data:`FAMILIES`.
        tasks: Tasks from :data:`TASKS` that can train the model.
        input_spec: Default per-sample input.
        name: Registry name, when it should differ from the builder's name.
        defaults: Builder keyword arguments used unless overridden in :func:`create_model`.
        recipe: Recipe path, relative to the repository root.

    Returns:
        The builder itself (unchanged), or a decorator when ``builder`` is omitted.

    Raises:
        ValueError: If the name is taken, or the family or a task is unknown.
    """

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        entry_name = name or fn.__name__
        if entry_name in _REGISTRY:
            owner = _REGISTRY[entry_name].builder
            raise ConfigError(
                f"model {entry_name!r} is already registered (by {owner.__module__}.{owner.__qualname__}); "
                "choose another name"
            )
        _validate_family(family)
        unknown_tasks = [t for t in tasks if t not in TASKS]
        if not tasks or unknown_tasks:
            raise ConfigError(f"model {entry_name!r}: tasks {unknown_tasks or tasks} not among {TASKS}")
        _REGISTRY[entry_name] = ModelEntry(
            name=entry_name,
            family=family,
            tasks=tuple(tasks),
            builder=fn,
            input_spec=input_spec,
            defaults=MappingProxyType(dict(defaults or {})),
            recipe=recipe,
            description=_first_line(fn.__doc__),
        )
        return fn

    return decorate(builder) if builder is not None else decorate


def create_model(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool | str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model, optionally with trained weights.

    Args:
        name: Registry name, or ``"timm/<timm name>"`` for any timm model.
        weights: A ``.safetensors`` file or a zoo checkpoint to load (see :func:`zoo.load_weights`); with
            another ``num_classes`` than the file's, the classifier stays freshly initialised.
        pretrained: For a zoo model, the tag of one of its weight cards (``"cifar10"``; see ``zoo weights``) or
            ``True`` for its first card: the card's file is found or downloaded, checksummed and loaded, with
            the builder arguments it was trained with unless ``overrides`` say otherwise (another class count
            keeps a fresh head). For a ``timm/`` or ``hf/`` model it is passed to that library as is.
        **overrides: Keyword arguments for the builder, e.g. ``num_classes=100``, ``in_chans=1`` or, for timm
            models, any timm keyword such as ``drop_path_rate=0.1``.

    Returns:
        The ``nn.Module``.

    Raises:
        UnknownModelError: If the name is not registered; the message lists the closest names.
        TypeError: If an override is not an argument the model accepts.
        ValueError: If the model has no weight card with that tag (the message lists the tags), or both
            ``weights`` and ``pretrained`` are given.
        zoo.WeightsMismatchError: If ``weights`` do not fit the model; the message lists the differences.
    """
    entry = model_info(name)
    card = None
    if pretrained not in (None, False):
        if "/" in entry.name:
            overrides["pretrained"] = pretrained
        elif weights is not None:
            raise ConfigError(f"create_model({name!r}): give weights= or pretrained=, not both")
        else:
            from zoo.pretrained import get_card

            card = get_card(entry.name, pretrained)
    kwargs = {**entry.defaults, **(card.model_kwargs if card else {}), **overrides}
    _check_arguments(entry, kwargs)
    try:
        model = entry.builder(**kwargs)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise IncompatibleError(f"create_model({name!r}): {err}") from err
        raise
    if card is not None:
        from zoo.pretrained import weights_file

        weights = weights_file(card)
    if weights is not None:
        from zoo.weights import load_weights

        load_weights(model, weights)
    return model


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Names of registered models, sorted.

    Args:
        pattern: Shell-style pattern, e.g. ``"resnet*"``. A pattern with a provider prefix such as
            ``"timm/convnext*"`` lists that library's models instead.
        family: Keep only models of this family.

    Returns:
        Sorted model names.
    """
    if family is not None:
        _validate_family(family)
    prefix, sep, rest = pattern.partition("/")
    if sep and prefix in _PREFIX_PROVIDERS:
        names = import_module(_PREFIX_PROVIDERS[prefix]).names(rest)
        return [n for n in names if family is None or model_info(n).family == family]
    _load_families()
    return sorted(
        entry.name
        for entry in _REGISTRY.values()
        if fnmatch.fnmatchcase(entry.name, pattern) and (family is None or entry.family == family)
    )


def model_info(name: str) -> ModelEntry:
    """The registry entry of ``name`` (see :class:`ModelEntry`).

    Raises:
        UnknownModelError: If the name is not registered; the message lists the closest names.
    """
    if not isinstance(name, str):
        raise IncompatibleError(f"model name must be a string, got {type(name).__name__}")
    _load_families()
    if name in _REGISTRY:
        return _REGISTRY[name]
    prefix, sep, rest = name.partition("/")
    if sep and prefix in _PREFIX_PROVIDERS:
        return import_module(_PREFIX_PROVIDERS[prefix]).entry(rest)
    in_providers = [f"{p}/{name}" for p, m in _PREFIX_PROVIDERS.items() if import_module(m).has(name)]
    candidates = suggest(name, list(_REGISTRY)) if not in_providers else f"did you mean {in_providers[0]!r}?"
    providers = ", ".join(f"'{p}/<name>'" for p in _PREFIX_PROVIDERS)
    raise UnknownModelError(
        f"unknown model {name!r}: {candidates} (see `zoo models`; library models are named {providers})"
    )


def suggest(name: str, candidates: list[str]) -> str:
    """Text naming the candidates closest to ``name``, for unknown-name errors."""
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    return f"did you mean {', '.join(map(repr, close))}?" if close else "no close name found"


def _load_families() -> None:
    global _families_loaded
    if not _families_loaded:
        for module in _FAMILY_MODULES.values():
            import_module(module)
        _families_loaded = True


def _validate_family(family: str) -> None:
    if family not in FAMILIES:
        raise ConfigError(f"unknown family {family!r}; expected one of {FAMILIES}")


def _check_arguments(entry: ModelEntry, kwargs: Mapping[str, Any]) -> None:
    params = inspect.signature(entry.builder).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    accepted = {p.name for p in params}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise IncompatibleError(
            f"create_model({entry.name!r}): unexpected argument(s) {unknown}; accepted: {sorted(accepted)}"
        )


def _count_parameters(entry: ModelEntry) -> int:
    import torch

    try:
        with torch.device("meta"):
            model = entry.builder(**entry.defaults)
    except (NotImplementedError, RuntimeError):  # a builder that computes on tensors while it initialises
        model = entry.builder(**entry.defaults)
    return sum(p.numel() for p in model.parameters())


def _first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc).splitlines()[0] if doc else ""
