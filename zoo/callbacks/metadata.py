"""Put into every checkpoint what it needs to describe itself: the data's facts, the recipe and the metrics.

Export reads this to write artifacts that carry their own preprocessing, label names and provenance; without
it a checkpoint says only which network it holds. Everything stored is plain data (strings, numbers, lists,
dictionaries), so the checkpoint still loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import lightning as L
import torch

__all__ = ["METADATA_KEY", "CheckpointMetadata", "data_facts"]

METADATA_KEY = "zoo_metadata"
# Attributes a data module may expose that describe the model's input and output.
_DATA_FACTS = ("class_names", "num_classes", "in_chans", "in_channels", "image_size", "mean", "std", "vocab_size",
               "block_size", "max_length")  # fmt: skip


class CheckpointMetadata(L.Callback):
    """Record the data's facts, the recipe and the last metrics under ``checkpoint["zoo_metadata"]``.

    ``zoo fit`` adds it with the resolved recipe; library users may add it themselves (the recipe is optional).

    Args:
        recipe: Path of the recipe the run came from.
        recipe_text: The resolved configuration, as text; its SHA-256 is stored beside it.

    Stored:
        ``{"zoo_version", "data": {class_names, mean, std, image_size, ..., tokenizer}, "recipe": {path, text,
        sha256} | None, "metrics": {name: value}, "best": {monitor, score} | None}``.
    """

    def __init__(self, recipe: str | None = None, recipe_text: str | None = None) -> None:
        self.recipe = recipe
        self.recipe_text = recipe_text

    def on_save_checkpoint(  # noqa: D102
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        from zoo import __version__

        recipe = None
        if self.recipe_text is not None:
            digest = hashlib.sha256(self.recipe_text.encode()).hexdigest()
            recipe = {"path": self.recipe, "text": self.recipe_text, "sha256": digest}
        metrics = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if isinstance(value, torch.Tensor) and value.numel() == 1
        }
        best = None
        saver = trainer.checkpoint_callback
        score = getattr(saver, "best_model_score", None)
        if score is not None:
            best = {"monitor": getattr(saver, "monitor", None), "score": float(score)}
        checkpoint[METADATA_KEY] = {
            "zoo_version": __version__,
            "data": data_facts(trainer.datamodule),
            "recipe": recipe,
            "metrics": metrics,
            "best": best,
        }


def data_facts(data: Any) -> dict[str, Any]:
    """The plain-data facts a data module knows about the model's input and output (tokenizer included)."""
    if data is None:
        return {}
    facts: dict[str, Any] = {}
    for name in _DATA_FACTS:
        value = getattr(data, name, None)
        if isinstance(value, int | float | str):
            facts[name] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, int | float | str) for v in value):
            facts[name] = list(value)
    tokenizer = getattr(data, "tokenizer", None)
    if hasattr(tokenizer, "to_config"):
        facts["tokenizer"] = {"kind": "zoo", "config": tokenizer.to_config()}
    elif hasattr(tokenizer, "backend_tokenizer"):  # a transformers fast tokenizer
        facts["tokenizer"] = {"kind": "huggingface", "json": tokenizer.backend_tokenizer.to_str()}
    return facts
