"""Text encoders for classification, from Hugging Face ``transformers`` (imported only when one is built).

``bert_tiny``/``bert_small`` and ``roberta_tiny`` are BERT and RoBERTa configurations built from scratch with
random weights. ``hf/<local directory>`` loads a model saved with ``save_pretrained`` (``from_pretrained`` with
``local_files_only=True``: nothing is downloaded). Either way the result is a :class:`TextEncoderClassifier`.

Shapes:
    ``input_ids (B, L)`` and optional ``attention_mask (B, L)`` -> logits ``(B, num_classes)``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.errors import DataError
from zoo.registry import InputSpec, ModelEntry, UnknownModelError, register_model

__all__ = ["TextEncoderClassifier", "entry", "has", "names"]


class TextEncoderClassifier(nn.Module):
    """A ``transformers`` sequence-classification model with zoo's model surface.

    ``num_classes``, ``vocab_size`` and ``max_length`` (the position-embedding length) are read from its
    config; ``get_classifier()`` is the classification head (what ``FreezeBackbone`` leaves trainable);
    ``group_matcher()`` splits embeddings and encoder layers for layer-wise learning-rate decay; and
    ``save_pretrained`` writes a directory that ``hf/<directory>`` reads back.

    Args:
        model: A ``transformers`` ``*ForSequenceClassification`` model (BERT- or RoBERTa-style).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        config = model.config
        self.num_classes = config.num_labels
        self.vocab_size = config.vocab_size
        # RoBERTa numbers positions from padding_idx + 1, so two of its position embeddings are never used.
        offset = (config.pad_token_id or 0) + 1 if config.model_type == "roberta" else 0
        self.max_length = config.max_position_embeddings - offset

    def get_classifier(self) -> nn.Module:
        """The classification head."""
        return self.model.classifier

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Embeddings, then each encoder layer, then the head (timm's format) for layer-wise LR decay."""
        prefix = rf"^model\.{self.model.base_model_prefix}\."
        return {"stem": prefix + "embeddings", "blocks": [(prefix + r"encoder\.layer\.(\d+)", None)]}

    def no_weight_decay(self) -> set[str]:
        """Embedding tables are not decayed."""
        return {n for n, p in self.named_parameters() if "embeddings" in n and p.ndim == 2}

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the model in ``transformers``' format (config and safetensors)."""
        self.model.save_pretrained(str(directory))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L)`` token ids (and mask) -> ``(B, num_classes)`` logits."""
        if input_ids.shape[-1] > self.max_length:
            raise DataError(
                f"sequence of {input_ids.shape[-1]} tokens is longer than the model's maximum of {self.max_length}"
            )
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


_SIZES = {
    "tiny": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512},
    "small": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024},
}
_TEXT = {"family": "transformer", "tasks": ("text_classification",), "input_spec": InputSpec((128,), "int64")}


def _from_config(
    model_type: str, size: str, num_classes: int = 2, vocab_size: int = 30522, **kwargs: Any
) -> TextEncoderClassifier:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    settings = {**_SIZES[size], "max_position_embeddings": 512, **kwargs}
    config = AutoConfig.for_model(model_type, vocab_size=vocab_size, num_labels=num_classes, **settings)
    return TextEncoderClassifier(AutoModelForSequenceClassification.from_config(config))


@register_model(**_TEXT, defaults={"num_classes": 2, "vocab_size": 30522})
def bert_tiny(**kwargs: Any) -> TextEncoderClassifier:
    """BERT encoder, 2 layers, 128 wide, 2 heads, random weights (a quick baseline and test model)."""
    return _from_config("bert", "tiny", **kwargs)


@register_model(**_TEXT, defaults={"num_classes": 2, "vocab_size": 30522})
def bert_small(**kwargs: Any) -> TextEncoderClassifier:
    """BERT encoder, 4 layers, 256 wide, 4 heads, random weights."""
    return _from_config("bert", "small", **kwargs)


@register_model(**_TEXT, defaults={"num_classes": 2, "vocab_size": 50265})
def roberta_tiny(**kwargs: Any) -> TextEncoderClassifier:
    """RoBERTa encoder, 2 layers, 128 wide, 2 heads, random weights."""
    return _from_config("roberta", "tiny", **kwargs)


# "hf/<directory>": a local transformers checkpoint (the registry's prefix-provider interface) -------------


def entry(name: str) -> ModelEntry:
    """Registry entry for the local ``transformers`` model directory ``name``."""
    directory = Path(name).expanduser()
    if not (directory / "config.json").is_file():
        raise UnknownModelError(
            f"hf/{name}: {directory} is not a transformers model directory (no config.json); zoo reads local "
            "directories written by save_pretrained and downloads nothing"
        )
    return ModelEntry(
        name=f"hf/{name}",
        family="transformer",
        tasks=("text_classification",),
        builder=partial(_from_pretrained, directory),
        input_spec=InputSpec((128,), "int64"),
        description=f"transformers model from {directory}",
    )


def names(pattern: str = "*") -> list[str]:
    """Local directories are not enumerable: always empty."""
    return []


def has(name: str) -> bool:
    """Whether ``name`` is a local transformers model directory."""
    return (Path(name).expanduser() / "config.json").is_file()


def _from_pretrained(directory: Path, num_classes: int | None = None, **kwargs: Any) -> TextEncoderClassifier:
    from transformers import AutoModelForSequenceClassification

    if num_classes is not None:
        kwargs.update(num_labels=num_classes, ignore_mismatched_sizes=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(directory), local_files_only=True, **kwargs)
    return TextEncoderClassifier(model)
