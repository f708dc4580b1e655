"""The inference signature: what goes into a task's network, how raw input gets there, and what comes out.

Every task declares one (:meth:`zoo.tasks.ZooTask.inference_signature`), in the spirit of torchvision's
``Weights.meta`` but typed. Export, ``export.load(...).predict``, and the coming evaluation, quantization and
serving code read it instead of asking which class a task is: a new task that declares its signature is
exported, verified and served with no edit elsewhere. It is stored, as plain JSON, in every exported
artifact (:meth:`InferenceSignature.to_dict`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from zoo.errors import CheckpointError

__all__ = [
    "GraphInput",
    "ImageInput",
    "InferenceSignature",
    "NoiseInput",
    "Preprocessing",
    "TensorSpec",
    "TextInput",
    "TokenInput",
    "json_ready",
    "preprocessing_from_dict",
]


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output of the network.

    Attributes:
        name: Its name (an ONNX input/output name, a keyword of a serving request).
        shape: Its shape; a string is a symbolic size (``"batch"``, ``"tokens"``, ``"nodes"``), shared by every
            tensor that uses the same name.
        dtype: Element type as torch spells it (``"float32"``, ``"int64"``).
        description: What the values mean (``"logits over labels"``, ``"token ids in [0, 65)"``).
        max_sizes: Upper bounds of symbolic sizes the network cannot exceed (a context length).
    """

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    description: str = ""
    max_sizes: Mapping[str, int] = field(default_factory=dict)

    def resolve(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        """The concrete shape for the symbolic ``sizes`` given.

        Raises:
            KeyError: Naming a symbolic size that ``sizes`` lacks.
        """
        missing = [d for d in self.shape if isinstance(d, str) and d not in sizes]
        if missing:
            raise KeyError(f"{self.name}: no value for the symbolic size(s) {missing}; got {dict(sizes)}")
        return tuple(sizes[d] if isinstance(d, str) else d for d in self.shape)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the ``max`` key is the one earlier artifacts used)."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "description": self.description,
            "max": dict(self.max_sizes),
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any] | str) -> TensorSpec:
        """Read :meth:`to_dict`'s form, or a bare name (earlier artifacts listed outputs by name only)."""
        if isinstance(stored, str):
            return cls(stored, (), "")
        return cls(
            stored["name"],
            tuple(stored.get("shape", ())),
            stored.get("dtype", ""),
            stored.get("description", ""),
            dict(stored.get("max") or {}),
        )


@dataclass(frozen=True)
class ImageInput:
    """Raw images to the first input ``(N, in_chans, image_size, image_size)`` float32.

    RGB (or greyscale); with ``crop_pct``, the evaluation transform of the data (shorter side resized to
    ``int(image_size / crop_pct)``, centre crop), else resized to ``image_size`` square; scaled to ``[0, 1]``
    and normalised with ``mean`` and ``std`` (not at all when the data declared none).
    """

    kind: ClassVar[str] = "image"
    image_size: int
    in_chans: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_pct: float | None = None


@dataclass(frozen=True)
class TextInput:
    """Raw texts to ``input_ids`` and ``attention_mask``, ``(N, L)`` int64 each.

    By the tokenizer: special tokens added, truncated to ``max_length``, padded to the longest.
    """

    kind: ClassVar[str] = "text"
    tokenizer: Mapping[str, Any] | None
    max_length: int | None


@dataclass(frozen=True)
class TokenInput:
    """A text prompt to token ids ``(1, T)`` by the tokenizer.

    The network sees at most ``block_size`` tokens at once; generation crops the context.
    """

    kind: ClassVar[str] = "tokens"
    tokenizer: Mapping[str, Any] | None
    block_size: int


@dataclass(frozen=True)
class GraphInput:
    """A graph is given as node features ``x (N, in_channels)`` and ``edge_index (2, E)``, used as they are."""

    kind: ClassVar[str] = "graph"
    in_channels: int


@dataclass(frozen=True)
class NoiseInput:
    """A denoiser's inputs: noisy images and timesteps of the ``noise_schedule`` (diffusers' scheduler config).

    Generated images in ``[-1, 1]`` map back to the data's normalisation with ``mean`` and ``std``.
    """

    kind: ClassVar[str] = "noise"
    image_size: int
    in_chans: int
    noise_schedule: Mapping[str, Any]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


Preprocessing = ImageInput | TextInput | TokenInput | GraphInput | NoiseInput
_PREPROCESSING: dict[str, type] = {cls.kind: cls for cls in (ImageInput, TextInput, TokenInput, GraphInput, NoiseInput)}


def preprocessing_to_dict(preprocessing: Preprocessing | None) -> dict[str, Any]:
    """Plain data: the fields (sequences as lists) and ``kind``. The keys are those earlier artifacts used."""
    if preprocessing is None:
        return {}
    out: dict[str, Any] = {"kind": preprocessing.kind}
    for name, value in ((f.name, getattr(preprocessing, f.name)) for f in dataclasses.fields(preprocessing)):
        if value is not None:
            out[name] = list(value) if isinstance(value, tuple) else value
    if isinstance(preprocessing, NoiseInput):
        out["output"] = "prediction in the [-1, 1] image space of the noise schedule below"
    return out


def preprocessing_from_dict(
    stored: Mapping[str, Any] | None, inputs: Sequence[TensorSpec] = ()
) -> Preprocessing | None:
    """Read :func:`preprocessing_to_dict`'s form; an artifact from before ``kind`` existed is read by its keys.

    Raises:
        ValueError: For an unknown ``kind``.
    """
    stored = dict(stored or {})
    kind = stored.get("kind") or _legacy_kind(stored, inputs)
    if kind is None:
        return None
    cls = _PREPROCESSING.get(kind)
    if cls is None:
        raise CheckpointError(f"unknown preprocessing kind {kind!r}; expected one of {sorted(_PREPROCESSING)}")
    values = {f.name: stored.get(f.name) for f in dataclasses.fields(cls)}
    for name in ("mean", "std"):
        if values.get(name) is not None:
            values[name] = tuple(values[name])
    if cls is TokenInput and values.get("block_size") is None:
        values["block_size"] = next(iter(inputs)).max_sizes.get("tokens", 0) if inputs else 0
    if cls is GraphInput and values.get("in_channels") is None:
        values["in_channels"] = next(iter(inputs)).shape[-1] if inputs else 0
    if cls in (ImageInput, NoiseInput) and inputs and len(inputs[0].shape) == 4:
        _, channels, side, _ = inputs[0].shape  # ("batch", C, S, S)
        values["in_chans"] = values.get("in_chans") or channels
        values["image_size"] = values.get("image_size") or side
    return cls(**values)


def _legacy_kind(stored: Mapping[str, Any], inputs: Sequence[TensorSpec]) -> str | None:
    """The kind of an artifact exported before signatures, from what its metadata holds."""
    names = [spec.name for spec in inputs]
    if "noise_schedule" in stored:
        return "noise"
    if "attention_mask" in names:
        return "text"
    if names[:1] == ["input_ids"]:
        return "tokens"
    if "edge_index" in names:
        return "graph"
    if names[:1] == ["images"]:
        return "image"
    return None


@dataclass(frozen=True)
class InferenceSignature:
    """A task's answer to "what goes in, how is raw input prepared, what comes out, what are the labels".

    Attributes:
        task: The registry's task name (``"image_classification"``, ``"language_modeling"``, ...).
        inputs: The network's inputs, in the order its inference module takes them.
        outputs: Its outputs, in order.
        preprocessing: How raw input (image files, texts, a prompt, a graph) becomes the inputs, and for a
            denoiser the noise schedule; ``None`` when the task knows nothing of its data (trained without a
            data module that declares facts).
        labels: Class names by output index, when the task classifies and the data named its classes.
        example_sizes: Sizes of the symbolic dimensions to trace or export with.
        check_sizes: Other sizes to verify an export on (an artifact that baked a size in fails on them).
        limits: Upper bounds some runtimes need on symbolic sizes beyond the network's own (``torch.export``).
        limits_reason: Why those bounds exist.
    """

    task: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preprocessing: Preprocessing | None = None
    labels: tuple[str, ...] | None = None
    example_sizes: Mapping[str, int] = field(default_factory=dict)
    check_sizes: tuple[Mapping[str, int], ...] = ()
    limits: Mapping[str, int] = field(default_factory=dict)
    limits_reason: str = ""

    @property
    def raw_input(self) -> Literal["image", "text", "tokens", "graph", "noise"] | None:
        """What kind of raw input the task takes (the preprocessing's kind)."""
        return None if self.preprocessing is None else self.preprocessing.kind  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, as embedded in exported artifacts."""
        return {
            "task_kind": self.task,
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
            "preprocessing": preprocessing_to_dict(self.preprocessing),
            "labels": None if self.labels is None else list(self.labels),
            "sizes": {
                "example": dict(self.example_sizes),
                "check": [dict(sizes) for sizes in self.check_sizes],
                "limits": dict(self.limits),
                "limits_reason": self.limits_reason,
            },
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> InferenceSignature:
        """Read :meth:`to_dict`'s form; also the metadata of artifacts exported before signatures existed."""
        inputs = tuple(TensorSpec.from_dict(spec) for spec in stored.get("inputs") or ())
        sizes = stored.get("sizes") or {}
        legacy_limits = stored.get("exported_program_limits") or {}
        preprocessing = preprocessing_from_dict(stored.get("preprocessing"), inputs)
        return cls(
            task=stored.get("task_kind") or _legacy_task(preprocessing, inputs),
            inputs=inputs,
            outputs=tuple(TensorSpec.from_dict(spec) for spec in stored.get("outputs") or ()),
            preprocessing=preprocessing,
            labels=tuple(stored["labels"]) if stored.get("labels") else None,
            example_sizes=dict(sizes.get("example") or {}),
            check_sizes=tuple(dict(s) for s in sizes.get("check") or ()),
            limits=dict(sizes.get("limits") or legacy_limits.get("max") or {}),
            limits_reason=sizes.get("limits_reason") or legacy_limits.get("reason") or "",
        )


def _legacy_task(preprocessing: Preprocessing | None, inputs: Sequence[TensorSpec]) -> str:
    """The task of an artifact exported before signatures, from its input kind (a graph batch vector: graphs)."""
    if preprocessing is None:
        return ""
    if preprocessing.kind == "graph":
        return "graph_classification" if "batch" in [spec.name for spec in inputs] else "node_classification"
    kinds = {"image": "image_classification", "text": "text_classification", "tokens": "language_modeling",
             "noise": "diffusion"}  # fmt: skip
    return kinds[preprocessing.kind]


def json_ready(value: Any) -> Any:
    """``value`` as JSON-able data: dicts with string keys, lists for tuples, anything else unknown as its text."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
