"""CIFAR-10 training images kept on the device: same samples, order and preprocessing as the worker path."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from zoo.data import CIFAR10DataModule
from zoo.data.on_device import KEYS, is_key_batch
from zoo.tasks import ImageClassifier


def _mini(**kwargs: object) -> CIFAR10DataModule:
    data = CIFAR10DataModule(variant="mini", batch_size=8, num_workers=0, seed=3, **kwargs)
    data.setup("fit")
    return data


def test_without_augmentation_the_batches_equal_the_worker_path() -> None:
    data = _mini(on_device=True, augment=False)
    keys = next(iter(data.train_dataloader()))
    assert is_key_batch(keys)
    images, labels = data.on_after_batch_transfer(keys, 0)
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    worker = _mini(augment=False)
    order = [index for _, index in itertools.islice(iter(worker.train_dataloader().sampler), 8)]
    assert keys[KEYS].tolist() == order  # same sampler: same order, sharding and resume as the worker path
    expected = torch.stack([worker.train_set[i][0] for i in order])
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)
    assert labels.tolist() == [int(worker.train_set[i][1]) for i in order]


def test_augmentation_is_a_reflect_padded_crop_or_its_flip_and_fixed_by_seed_and_position() -> None:
    data = _mini(on_device=True)
    keys = next(iter(data.train_dataloader()))
    images, _ = data.on_after_batch_transfer(keys, 0)
    again, _ = data.on_after_batch_transfer(keys, 0)
    torch.testing.assert_close(images, again, rtol=0, atol=0)
    plain = _mini(on_device=True, augment=False)
    originals, _ = plain.on_after_batch_transfer(keys, 0)
    padded = F.pad(originals, (4, 4, 4, 4), mode="reflect")
    for image, source in zip(images, padded, strict=True):
        crops = [source[:, y : y + 32, x : x + 32] for y in range(9) for x in range(9)]
        assert any(torch.allclose(image, c, atol=1e-5) or torch.allclose(image, c.flip(2), atol=1e-5) for c in crops)
    other_epoch = {**keys, "seed": keys["seed"] + 1}
    assert not torch.equal(data.on_after_batch_transfer(other_epoch, 0)[0], images)


def test_trains_with_the_trainer(trainer_factory) -> None:
    data = CIFAR10DataModule(variant="mini", batch_size=16, num_workers=0, on_device=True)
    task = ImageClassifier("speedrun_net_tiny", num_classes=10)
    trainer = trainer_factory(max_steps=3, limit_val_batches=1)
    trainer.fit(task, data)
    assert trainer.global_step == 3 and torch.isfinite(trainer.callback_metrics["train/loss"])


def test_on_device_refuses_augmentations_it_cannot_run() -> None:
    with pytest.raises(ValueError, match=r"on_device=True .* auto_augment='trivialaugment'"):
        CIFAR10DataModule(variant="mini", on_device=True, auto_augment="trivialaugment")
