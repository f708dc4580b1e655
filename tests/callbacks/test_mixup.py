from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoo.callbacks import MixupCutmix
from zoo.tasks import ImageClassifier

NUM_CLASSES = 10


@pytest.fixture
def task() -> ImageClassifier:
    return ImageClassifier("speedrun_net_tiny", num_classes=NUM_CLASSES, label_smoothing=0.1)


def _ready(callback: MixupCutmix, task: ImageClassifier) -> L.Trainer:
    """Attach the callback to a real (not yet running) trainer, as Lightning does at fit setup."""
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[callback])
    callback.setup(trainer, task, "fit")
    return trainer


def _batch(seed: int = 0, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(size, 3, 32, 32, generator=generator), torch.randint(0, NUM_CLASSES, (size,), generator=generator)


def _smoothed(labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    return F.one_hot(labels, NUM_CLASSES).float() * (1 - smoothing) + smoothing / NUM_CLASSES


def test_mixup_matches_the_per_sample_reference(task) -> None:
    callback = MixupCutmix(mixup_alpha=0.4, cutmix_alpha=0.0)
    _ready(callback, task)
    images, labels = _batch()
    mixed, soft, hard = callback.mix((images, labels))
    lam = callback.last_lam
    assert 0 < lam < 1
    for i in range(len(images)):
        partner = len(images) - 1 - i
        assert torch.allclose(mixed[i], lam * images[i] + (1 - lam) * images[partner], atol=1e-6)
        expected = lam * _smoothed(labels[i], 0.1) + (1 - lam) * _smoothed(labels[partner], 0.1)
        assert torch.allclose(soft[i], expected, atol=1e-6)
    assert torch.equal(hard, labels)
    assert torch.equal(images, _batch()[0])  # the loader's batch is left untouched


def test_cutmix_box_area_pixels_and_label_weights_match_the_reference(task) -> None:
    callback = MixupCutmix(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0)
    trainer = _ready(callback, task)
    for index in range(5):  # several draws, several boxes
        trainer.fit_loop.epoch_loop.batch_progress.total.ready = index
        images, labels = _batch(seed=index)
        mixed, soft, _ = callback.mix((images, labels))
        lam = callback.last_lam
        flipped = images.flip(0)
        pasted = (mixed != images).any(dim=1)  # (B, H, W): where a pixel came from the partner
        rows, cols = pasted[0].any(dim=1).nonzero(), pasted[0].any(dim=0).nonzero()
        box = torch.zeros(32, 32, dtype=torch.bool)
        if len(rows):
            box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert torch.equal(pasted[0], box)  # one axis-aligned rectangle, the same for every image
        assert (pasted == box).all()
        assert box.float().mean().item() == pytest.approx(1 - lam)  # label weight = uncovered share
        for i in range(len(images)):
            assert torch.equal(mixed[i][:, box], flipped[i][:, box])
            assert torch.equal(mixed[i][:, ~box], images[i][:, ~box])
            expected = lam * _smoothed(labels[i], 0.0) + (1 - lam) * _smoothed(labels[len(images) - 1 - i], 0.0)
            assert torch.allclose(soft[i], expected, atol=1e-6)


def test_draws_depend_only_on_seed_rank_and_batch_index_and_keep_numpy_global_state(task) -> None:
    def lams(seed: int, indices: list[int]) -> list[float]:
        callback = MixupCutmix(seed=seed)
        trainer = _ready(callback, task)
        values = []
        for index in indices:
            trainer.fit_loop.epoch_loop.batch_progress.total.ready = index
            callback.mix(_batch(seed=index))
            values.append(callback.last_lam)
        return values

    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    straight = lams(0, [0, 1, 2, 3, 4, 5])
    assert np.array_equal(np.random.get_state()[1], before)
    assert lams(0, [3, 4, 5]) == straight[3:]  # what a resumed run draws for the remaining batches
    assert lams(1, [0, 1, 2, 3, 4, 5]) != straight


def test_prob_zero_mixes_nothing_and_stop_epoch_stops(task) -> None:
    callback = MixupCutmix(prob=0.0, label_smoothing=0.0)
    _ready(callback, task)
    images, labels = _batch()
    mixed, soft, _ = callback.mix((images, labels))
    assert torch.equal(mixed, images) and torch.equal(soft, _smoothed(labels, 0.0))

    stopping = MixupCutmix(stop_epoch=0)
    _ready(stopping, task)
    assert stopping.mix((images, labels)) == (images, labels)


def test_trains_with_a_real_trainer_and_metrics_use_hard_labels(task, tmp_path) -> None:
    images, labels = _batch(size=16)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=8)
    seen = []

    class Spy(L.Callback):
        def setup(self, trainer, pl_module, stage):  # runs after MixupCutmix.setup: its transform sees mixed batches
            pl_module.train_batch_transforms.append(lambda batch: seen.append(batch) or batch)

    trainer = L.Trainer(
        accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        callbacks=[mixing := MixupCutmix(), Spy()], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(task, loader)
    assert [len(b) for b in seen] == [3, 3]
    assert seen[0][1].shape == (8, NUM_CLASSES) and torch.equal(seen[0][2], labels[:8])
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert mixing.mix not in task.train_batch_transforms  # removed at teardown


def test_task_without_soft_targets_is_refused() -> None:
    class HardLabelsOnly(L.LightningModule):
        num_classes = 10

    with pytest.raises(TypeError, match="HardLabelsOnly does not declare supports_soft_targets"):
        MixupCutmix().setup(L.Trainer(logger=False), HardLabelsOnly(), "fit")


def test_odd_batch_and_bad_settings_are_named(task) -> None:
    callback = MixupCutmix()
    _ready(callback, task)
    with pytest.raises(ValueError, match="even batch size, got 7"):
        callback.mix(_batch(size=7))
    with pytest.raises(ValueError, match="mixup_alpha > 0 or cutmix_alpha > 0"):
        MixupCutmix(mixup_alpha=0, cutmix_alpha=0)
    with pytest.raises(ValueError, match="switch_prob must be in"):
        MixupCutmix(switch_prob=1.5)
