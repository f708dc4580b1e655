"""zoo's offline FID: the shipped feature classifier, the metric built on it, and the task's test-time FID."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

from zoo.data import CIFAR10DataModule, ShapesDataModule
from zoo.metrics.fid import build_fid, default_feature_card
from zoo.tasks import DiffusionModel, ImageClassifier


@pytest.fixture(scope="module")
def cifar_mini() -> CIFAR10DataModule:
    data = CIFAR10DataModule(variant="mini", num_workers=0, eval_batch_size=500)
    data.setup()
    return data


def test_the_shipped_classifier_is_what_its_card_says(cifar_mini: CIFAR10DataModule, trainer_factory) -> None:
    card = default_feature_card()
    assert (card.model, card.recipe) == ("speedrun_net_tiny", "recipes/cifar10/speedrun_net_tiny.yaml")
    metric, _ = build_fid(None)
    classifier = metric.inception.classifier
    task = ImageClassifier(classifier, num_classes=10)
    accuracy = trainer_factory().test(task, cifar_mini.test_dataloader(), verbose=False)[0]["test/acc1"]
    # The shipped 2,000 test images are a subset of the 10,000 the card's figure was measured on.
    assert abs(accuracy - card.metrics[0].value) < 0.03


def _unit(data: CIFAR10DataModule, split: str, count: int) -> torch.Tensor:
    """``count`` images of a split drawn at random (the arrays are sorted by class), in ``[0, 1]``."""
    dataset = data.test_set if split == "test" else data.val_set
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:count]
    images = torch.stack([dataset[int(i)][0] for i in order])
    mean, std = torch.tensor(data.mean).view(1, 3, 1, 1), torch.tensor(data.std).view(1, 3, 1, 1)
    return (images * std + mean).clamp(0, 1)


def test_real_images_are_closer_to_real_images_than_noise_is(cifar_mini: CIFAR10DataModule) -> None:
    metric, name = build_fid(None)
    assert name == "fid_zoo_classifier"
    test_images, val_images = _unit(cifar_mini, "test", 1000), _unit(cifar_mini, "val", 1000)
    metric.update(test_images, real=True)
    metric.update(val_images, real=False)
    real_vs_real = float(metric.compute())
    metric.reset()
    metric.update(test_images, real=True)
    metric.update(torch.rand(1000, 3, 32, 32, generator=torch.Generator().manual_seed(0)), real=False)
    real_vs_noise = float(metric.compute())
    # About 6 against 324: at 1,000 images a side the small-sample bias dominates the real pair's figure.
    assert 0 <= real_vs_real < real_vs_noise / 10


def test_other_feature_networks_and_bad_paths(tmp_path: Path, trainer_factory) -> None:
    data = ShapesDataModule(image_size=16, num_train=32, num_val=8, num_test=8, batch_size=16, num_workers=0)
    task = ImageClassifier("speedrun_net_tiny", num_classes=3, optimizer=partial(torch.optim.SGD, lr=0.01))
    trainer = trainer_factory(max_steps=1, limit_val_batches=0)
    trainer.fit(task, data)
    trainer.save_checkpoint(tmp_path / "judge.ckpt")
    metric, name = build_fid(str(tmp_path / "judge.ckpt"))
    assert name == "fid_zoo_classifier" and metric.inception.num_features == task.backbone.num_features
    with pytest.raises(FileNotFoundError, match=r"Inception-v3 weights not found: .*nowhere\.pth"):
        build_fid("inception:/nowhere.pth")
    with pytest.raises(FileNotFoundError, match="classifier checkpoint not found"):
        build_fid(str(tmp_path / "missing.ckpt"))
    with pytest.raises(ValueError, match="FID compares RGB images; these have 1 channel"):
        build_fid(None, in_chans=1)


def test_the_task_reports_fid_at_test_time(trainer_factory) -> None:
    data = ShapesDataModule(image_size=16, num_train=32, num_val=8, num_test=16, batch_size=8, num_workers=0)
    task = DiffusionModel("unet_tiny", image_size=16, in_chans=3, mean=data.mean, std=data.std, sample_steps=2,
                          sample_every_n_epochs=0, fid_num_images=6)  # fmt: skip
    result = trainer_factory().test(task, data, verbose=False)[0]
    assert result["test/fid_zoo_classifier"] > 0 and torch.isfinite(torch.tensor(result["test/loss"]))
    assert not any("classifier" in key for key in task.state_dict())  # the feature network is not saved
