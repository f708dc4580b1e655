"""Skewed classes: focal loss and class weights against torch, the balanced sampler, the imbalance warning."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from zoo.data import ImageFolderDataModule
from zoo.data.sampling import ResumableSampler
from zoo.errors import ConfigError
from zoo.tasks import ImageClassifier
from zoo.tasks.losses import balanced_weights, classification_loss


def test_focal_loss_with_gamma_zero_is_cross_entropy_weights_and_smoothing_included() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 6, generator=generator)
    labels = torch.randint(0, 6, (32,), generator=generator)
    soft = torch.softmax(torch.randn(32, 6, generator=generator), 1)
    weight = torch.rand(6, generator=generator) + 0.5
    for settings in ({}, {"weight": weight}, {"label_smoothing": 0.1}, {"weight": weight, "label_smoothing": 0.2}):
        focal = classification_loss(logits, labels, "focal", gamma=0.0, **settings)
        assert focal == pytest.approx(float(F.cross_entropy(logits, labels, **settings)), rel=1e-5), settings
    assert classification_loss(logits, soft, "focal", weight, gamma=0.0) == pytest.approx(
        float(F.cross_entropy(logits, soft, weight=weight)), rel=1e-5
    )
    # Focusing: confident right answers weigh less, so the focal loss is below cross-entropy.
    assert classification_loss(logits, labels, "focal", gamma=2.0) < F.cross_entropy(logits, labels)


def test_balanced_weights_and_bad_settings() -> None:
    assert balanced_weights([90, 10]).tolist() == pytest.approx([100 / 180, 100 / 20])
    with pytest.raises(ConfigError, match=r"class\(es\) \[1\] have no training example"):
        balanced_weights([5, 0])
    with pytest.raises(ConfigError, match="loss 'hinge': choose one of cross_entropy, focal"):
        ImageClassifier("speedrun_net_tiny", num_classes=10, loss="hinge")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="class_weights 'inverse': give 'balanced' or one weight per class"):
        ImageClassifier("speedrun_net_tiny", num_classes=10, class_weights="inverse")  # type: ignore[arg-type]
    task = ImageClassifier("speedrun_net_tiny", num_classes=10, class_weights=[1.0, 2.0])
    with pytest.raises(ConfigError, match="class_weights: 2 weights for 10 classes"):
        task.loss(torch.zeros(2, 10), torch.tensor([0, 1]))


def test_the_balanced_sampler_draws_classes_evenly_and_resumes_exactly() -> None:
    labels = [0] * 900 + [1] * 90 + [2] * 10
    weights = [1.0 / Counter(labels)[label] for label in labels]
    sampler = ResumableSampler(list(range(1000)), num_replicas=1, rank=0, seed=3, weights=weights)
    sampler.set_epoch(2)
    drawn = [index for _, index in sampler]
    shares = Counter(labels[index] for index in drawn)
    assert len(drawn) == 1000 and all(250 < shares[c] < 420 for c in range(3)), shares  # about 1/3 each
    resumed = ResumableSampler(list(range(1000)), num_replicas=1, rank=0, seed=3, weights=weights)
    resumed.resume_from(2, 384)
    assert [index for _, index in resumed] == drawn[384:]
    halves = [ResumableSampler(list(range(1000)), num_replicas=2, rank=r, seed=3, weights=weights) for r in (0, 1)]
    for half in halves:
        half.set_epoch(2)
    assert sorted(i for half in halves for _, i in half) == sorted(drawn)  # two ranks share the same draw
    sampler.set_epoch(3)
    assert [index for _, index in sampler] != drawn  # a new draw each epoch


def _skewed_tree(root: Path, extract) -> Path:
    extract(root, per_class=22, splits=("train", "test"))
    airplanes = sorted((root / "train" / "airplane").iterdir())
    for image in airplanes[2:]:  # 2 airplanes against 22 of every other class: 11:1
        image.unlink()
    return root


def test_a_skewed_training_set_is_warned_about_unless_the_recipe_handles_it(
    tmp_path: Path, trainer_factory, extract_images
) -> None:
    root = _skewed_tree(tmp_path / "tree", extract_images)

    def fit(**task_settings: object) -> tuple[list[str], ImageClassifier]:
        data = ImageFolderDataModule(root, image_size=32, batch_size=8, num_workers=0, val_split=4, seed=0)
        task = ImageClassifier("speedrun_net_tiny", num_classes=10, **task_settings)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer_factory(max_steps=1, limit_val_batches=1).fit(task, datamodule=data)
        return [str(w.message) for w in caught if "skewed" in str(w.message)], task

    messages, _ = fit()
    assert messages and "skewed" in messages[0] and "class_weights: balanced" in messages[0]
    messages, task = fit(class_weights="balanced")
    assert not messages
    counts = task._training_class_counts()
    assert counts is not None and min(counts) <= 2
    assert task.loss_weight().tolist() == pytest.approx(balanced_weights(counts).tolist())
