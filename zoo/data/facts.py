"""What only the data knows about a model's input and output, as one typed object.

A data module declares these facts (:attr:`zoo.data.ZooDataModule.data_facts`); ``zoo fit`` links those a
task's ``__init__`` accepts into it (``num_classes``, ``in_chans``, ``vocab_size``, ...), every checkpoint
stores them as plain data (so export, evaluation and serving know the label names, the normalisation and the
tokenizer), and a task reads them back for its inference signature. This dataclass is the one list of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import CheckpointError, IncompatibleError

__all__ = ["DataFacts", "tokenizer_from_spec", "tokenizer_spec"]


@dataclass(frozen=True)
class DataFacts:
    """The data's facts; ``None`` where a kind of data has no such fact (a text corpus has no classes).

    Attributes:
        num_classes: Number of classes of a classification dataset.
        class_names: Name of each class, by index.
        in_chans: Image channels.
        image_size: Side of the square images the model sees.
        mean: Per-channel mean the images are normalised with (after scaling to ``[0, 1]``).
        std: Per-channel standard deviation of that normalisation.
        crop_pct: For data evaluated on a centre crop (timm's ``crop_pct``): the shorter side is resized to
            ``image_size / crop_pct`` first; ``None`` when images are used at their size.
        in_channels: Node feature size of a graph dataset.
        vocab_size: Number of token ids the tokenizer produces.
        block_size: Tokens per language-modelling example (the context length).
        max_length: Longest tokenised text of a text-classification dataset, special tokens included.
        tokenizer: The tokenizer object (zoo's, a ``tokenizers.Tokenizer`` or a ``transformers`` fast
            tokenizer); stored in checkpoints as its JSON/config, never pickled, and never linked.
    """

    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    in_chans: int | None = None
    image_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_pct: float | None = None
    in_channels: int | None = None
    vocab_size: int | None = None
    block_size: int | None = None
    max_length: int | None = None
    tokenizer: Any = field(default=None, compare=False, repr=False)

    @property
    def empty(self) -> bool:
        """Whether no fact is set (the data declared nothing, or there was no data module)."""
        return all(getattr(self, name) is None for name in self.names())

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every fact's name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def linkable(cls) -> tuple[str, ...]:
        """The facts ``zoo fit`` may link into a task's ``__init__`` argument of the same name.

        The tokenizer is not among them: it is an object, and a task's arguments end up in its checkpoint's
        hyperparameters, which must stay plain data. Tasks adopt it from the data module in ``setup``.
        """
        return tuple(name for name in cls.names() if name != "tokenizer")

    @classmethod
    def of(cls, data: Any) -> DataFacts:
        """The facts of any object that has some of them as attributes (a data module); empty for ``None``.

        Values of the wrong kind (a property that is not set yet, a tensor) are left out rather than guessed.
        """
        if data is None:
            return cls()
        if isinstance(getattr(data, "data_facts", None), DataFacts):
            return data.data_facts
        return cls.from_attributes(data)

    @classmethod
    def from_attributes(cls, data: Any) -> DataFacts:
        """The facts an object holds as attributes of the same names (how data modules declare them)."""
        values: dict[str, Any] = {}
        for name in cls.linkable():
            value = getattr(data, name, None)
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float | str):
                values[name] = value
            elif isinstance(value, list | tuple) and all(isinstance(v, int | float | str) for v in value):
                values[name] = tuple(value)
        return cls(**values, tokenizer=getattr(data, "tokenizer", None))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a checkpoint (``torch.load(weights_only=True)`` reads it back): the facts that are set.

        Sequences become lists; the tokenizer becomes ``{"kind": "zoo", "config": ...}`` or
        ``{"kind": "huggingface", "json": ...}`` (see :func:`tokenizer_spec`).
        """
        out: dict[str, Any] = {}
        for name in self.linkable():
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, tuple) else value
        spec = tokenizer_spec(self.tokenizer)
        if spec is not None:
            out["tokenizer"] = spec
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> DataFacts:
        """The facts stored by :meth:`to_dict` (unknown keys, from newer versions, are ignored)."""
        values = dict(values or {})
        known = {name: values[name] for name in cls.linkable() if values.get(name) is not None}
        for name in ("class_names", "mean", "std"):
            if name in known:
                known[name] = tuple(known[name])
        return cls(**known, tokenizer=tokenizer_from_spec(values.get("tokenizer")))

    def links(self, accepted: set[str] | frozenset[str]) -> dict[str, Any]:
        """The linkable facts that are set and whose names are in ``accepted`` (a task's ``__init__`` arguments)."""
        return {
            name: (list(value) if isinstance(value, tuple) else value)
            for name in self.linkable()
            if name in accepted and (value := getattr(self, name)) is not None
        }


def tokenizer_spec(tokenizer: Any) -> dict[str, Any] | None:
    """A tokenizer as plain data: zoo's by its config, a Hugging Face one by its ``tokenizers`` JSON."""
    if tokenizer is None:
        return None
    if isinstance(tokenizer, dict):  # already a spec (read from a checkpoint and not rebuilt)
        return tokenizer
    if hasattr(tokenizer, "to_config"):
        return {"kind": "zoo", "config": tokenizer.to_config()}
    if hasattr(tokenizer, "backend_tokenizer"):  # a transformers fast tokenizer
        return {"kind": "huggingface", "json": tokenizer.backend_tokenizer.to_str()}
    if hasattr(tokenizer, "to_str"):  # a tokenizers.Tokenizer
        return {"kind": "huggingface", "json": tokenizer.to_str()}
    raise IncompatibleError(f"cannot store a {type(tokenizer).__name__} tokenizer: it has no to_config() or JSON form")


def tokenizer_from_spec(spec: Mapping[str, Any] | None) -> Any:
    """Rebuild a tokenizer stored by :func:`tokenizer_spec`: zoo's tokenizer, or a ``tokenizers.Tokenizer``.

    Raises:
        ValueError: For a spec of an unknown kind.
    """
    if spec is None:
        return None
    kind = spec.get("kind")
    if kind == "zoo":
        from zoo.data.tokenizers import tokenizer_from_config

        return tokenizer_from_config(spec["config"])
    if kind == "huggingface":
        from tokenizers import Tokenizer

        return Tokenizer.from_str(spec["json"])
    raise CheckpointError(f"unknown tokenizer kind {kind!r} in stored data facts; expected 'zoo' or 'huggingface'")
