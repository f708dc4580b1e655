"""Put into every checkpoint what it needs to describe itself: the data's facts, the recipe and the metrics.

Export reads this to write artifacts that carry their own preprocessing, label names and provenance; without
it a checkpoint says only which network it holds. Everything stored is plain data (strings, numbers, lists,
dictionaries), so the checkpoint still loads with ``torch.load(weights_only=True)``. The layout is
:class:`zoo.checkpoints.ZooMetadata`; a zoo task also stores its data facts itself.
"""

from __future__ import annotations

import hashlib
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from zoo.checkpoints import METADATA_KEY, BestScore, RecipeRecord, ZooMetadata
from zoo.data.facts import DataFacts
from zoo.data.fingerprint import fingerprint_changes

__all__ = ["CheckpointMetadata", "data_fingerprint"]


def data_fingerprint(trainer: L.Trainer) -> dict[str, Any] | None:
    """The fingerprint of the trainer's data module (computed once, by the module), if it reports one."""
    report = getattr(trainer.datamodule, "fingerprint", None)
    return report() if callable(report) else None


class CheckpointMetadata(L.Callback):
    """Record the data's facts, the recipe and the last metrics under ``checkpoint["zoo_metadata"]``.

    ``zoo fit`` adds it with the resolved recipe; library users may add it themselves (the recipe is optional).

    Args:
        recipe: Path of the recipe the run came from.
        recipe_text: The resolved configuration, as text; its SHA-256 is stored beside it.
        environment: What the run was made with (:func:`zoo.provenance.run_environment`).

    Stored:
        :meth:`zoo.checkpoints.ZooMetadata.to_dict`: ``{"zoo_version", "data": {class_names, mean, std,
        image_size, ..., tokenizer}, "recipe": {path, text, sha256} | None, "metrics": {name: value},
        "best": {monitor, score} | None, "environment": {...} | None, "data_fingerprint": {...} | None}``. The
        data fingerprint is the data module's own (:meth:`zoo.data.ZooDataModule.fingerprint`), read once the
        data is set up.
    """

    def __init__(
        self, recipe: str | None = None, recipe_text: str | None = None, environment: dict[str, Any] | None = None
    ) -> None:
        self.recipe = recipe
        self.recipe_text = recipe_text
        self.environment = environment
        self.data_fingerprint: dict[str, Any] | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.data_fingerprint = data_fingerprint(trainer)

    @override
    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Warn, naming what changed, when a resumed run reads other data than the checkpoint was trained on."""
        before = (checkpoint.get(METADATA_KEY) or {}).get("data_fingerprint")
        changes = fingerprint_changes(before, data_fingerprint(trainer))
        if changes:
            rank_zero_warn(
                f"the data differs from the data this checkpoint was trained on: {'; '.join(changes)}. Metrics "
                "after this point are not comparable with the run's earlier ones."
            )

    @override
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        from zoo import __version__

        recipe = None
        if self.recipe_text is not None:
            digest = hashlib.sha256(self.recipe_text.encode()).hexdigest()
            recipe = RecipeRecord(self.recipe, self.recipe_text, digest)
        metrics = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if isinstance(value, torch.Tensor) and value.numel() == 1
        }
        saver = trainer.checkpoint_callback
        score = getattr(saver, "best_model_score", None)
        best = None if score is None else BestScore(getattr(saver, "monitor", None), float(score))
        # A zoo task stores its own data facts (a tokenizer's JSON can be megabytes: serialise it once).
        own_facts = isinstance(getattr(pl_module, "data_facts", None), DataFacts)
        facts = DataFacts() if own_facts else DataFacts.of(trainer.datamodule)
        stored = ZooMetadata(
            __version__, facts, recipe, metrics, best, self.environment, self.data_fingerprint
        ).to_dict()
        if own_facts:
            del stored["data"]
        checkpoint.setdefault(METADATA_KEY, {}).update(stored)
