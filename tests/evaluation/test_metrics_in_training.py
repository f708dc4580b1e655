"""A recipe's ``metrics: [...]`` are logged in validation with the same values ``zoo evaluate`` computes."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from zoo.data import PlanetoidDataModule
from zoo.errors import ConfigError
from zoo.evaluation.classification import evaluate_classifier
from zoo.evaluation.predictions import collect_predictions
from zoo.tasks import NodeClassifier


def test_extra_metrics_are_logged_in_validation_as_zoo_evaluate_computes_them(
    shared_data: Path, trainer_factory
) -> None:
    torch.manual_seed(0)
    cora = PlanetoidDataModule(name="Cora")
    task = NodeClassifier("gcn", in_channels=cora.in_channels, num_classes=cora.num_classes,
                          metrics=["f1_macro", "auroc", "average_precision", "ece"],
                          optimizer=partial(torch.optim.Adam, lr=0.01, weight_decay=5e-4))  # fmt: skip
    trainer = trainer_factory(max_epochs=20)
    trainer.fit(task, cora)
    logged = trainer.validate(task, cora, verbose=False)[0]
    predictions = collect_predictions(SimpleNamespace(task=task.eval()), cora, "val")
    report = evaluate_classifier(predictions.logits, predictions.targets, resamples=10)
    for name in ("f1_macro", "auroc", "average_precision", "ece"):
        assert logged[f"val/{name}"] == pytest.approx(report.metrics[name].value, abs=1e-4), name
    with pytest.raises(ConfigError, match=r"metrics \['f1'\]: choose from f1_macro, "):
        NodeClassifier("gcn", in_channels=8, num_classes=3, metrics=["f1"])
