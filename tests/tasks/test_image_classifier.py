from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import zoo
from zoo.optim import WarmupCosineLR
from zoo.tasks import ImageClassifier


def _loader(images: torch.Tensor, targets: torch.Tensor, batch_size: int = 8) -> DataLoader:
    return DataLoader(TensorDataset(images, targets), batch_size=batch_size)


@pytest.fixture
def random_batches() -> DataLoader:
    torch.manual_seed(0)
    return _loader(torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,)))


def test_fit_with_real_trainer_logs_metrics_and_saves_weights_only_checkpoint(
    tmp_path: Path, random_batches: DataLoader, trainer_factory
) -> None:
    model = ImageClassifier("speedrun_net_tiny", num_classes=10)
    trainer = trainer_factory(max_epochs=2, enable_checkpointing=True)
    trainer.fit(model, random_batches, random_batches)
    metrics = trainer.callback_metrics
    assert {"train/loss", "train/acc1", "val/loss", "val/acc1", "val/acc5"} <= set(metrics)
    assert all(torch.isfinite(metrics[k]) for k in metrics)
    (ckpt,) = (tmp_path / "checkpoints").glob("*.ckpt")
    state = torch.load(ckpt, weights_only=True)  # no pickled objects: safe to load
    assert state["hyper_parameters"]["backbone"] == "speedrun_net_tiny"
    restored = ImageClassifier.load_from_checkpoint(ckpt)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(restored.backbone.state_dict()[key], value), key


def test_overfits_a_small_batch(trainer_factory) -> None:
    torch.manual_seed(0)
    loader = _loader(torch.randn(16, 3, 32, 32), torch.arange(16) % 4, batch_size=16)
    model = ImageClassifier(
        "speedrun_net_tiny", num_classes=4, optimizer=partial(torch.optim.AdamW, lr=3e-3, weight_decay=0.0)
    )
    trainer = trainer_factory(max_steps=60)
    trainer.fit(model, loader)
    trainer.validate(model, loader, verbose=False)
    assert trainer.callback_metrics["val/acc1"] == 1.0


def test_soft_targets_and_label_smoothing_follow_cross_entropy() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 10)
    labels = torch.tensor([1, 2, 3, 4])
    model = ImageClassifier("speedrun_net_tiny", label_smoothing=0.1)
    smoothed = torch.full((4, 10), 0.1 / 10)
    smoothed[torch.arange(4), labels] += 0.9
    expected = -(smoothed * logits.log_softmax(dim=1)).sum(dim=1).mean()
    assert torch.allclose(model.loss(logits, labels), expected, atol=1e-6)
    soft = torch.softmax(torch.randn(4, 10), dim=1)
    # probability targets arrive already smoothed (e.g. by mixup) and are not smoothed again
    assert torch.allclose(model.loss(logits, soft), -(soft * logits.log_softmax(dim=1)).sum(1).mean(), atol=1e-6)


def test_train_batch_transforms_run_before_the_forward_and_labels_drive_metrics(trainer_factory) -> None:
    torch.manual_seed(0)
    images, labels = torch.randn(16, 3, 32, 32), torch.arange(16) % 10
    model = ImageClassifier("speedrun_net_tiny")
    seen = []

    def to_soft(batch):
        seen.append(batch[1].clone())
        return batch[0], torch.nn.functional.one_hot(batch[1], 10).float(), batch[1]

    model.train_batch_transforms.append(to_soft)
    trainer = trainer_factory(max_steps=2)
    trainer.fit(model, _loader(images, labels))
    assert len(seen) == 2 and torch.equal(seen[0], labels[:8])
    assert 0 <= trainer.callback_metrics["train/acc1"] <= 1


def test_training_accepts_soft_targets(trainer_factory) -> None:
    torch.manual_seed(0)
    soft = torch.softmax(torch.randn(16, 10), dim=1)
    model = ImageClassifier("speedrun_net_tiny")
    trainer = trainer_factory(max_steps=2)
    trainer.fit(model, _loader(torch.randn(16, 3, 32, 32), soft))
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_norm_and_bias_parameters_get_no_weight_decay() -> None:
    model = ImageClassifier("resnet18_cifar", optimizer=partial(torch.optim.SGD, lr=0.1, weight_decay=5e-4))
    optimizer = model.configure_optimizers()
    decayed, exempt = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and exempt["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.backbone.named_parameters()}
    assert all(p.ndim > 1 for p in decayed["params"])
    exempt_names = {names[id(p)] for p in exempt["params"]}
    assert "bn1.weight" in exempt_names and "fc.bias" in exempt_names and "fc.weight" not in exempt_names
    assert len(decayed["params"]) + len(exempt["params"]) == len(list(model.backbone.parameters()))


def test_warmup_cosine_is_stepped_per_step_with_total_from_trainer(trainer_factory, random_batches: DataLoader) -> None:
    base_lr = 0.1
    model = ImageClassifier(
        "speedrun_net_tiny",
        optimizer=partial(torch.optim.SGD, lr=base_lr),
        lr_scheduler=partial(WarmupCosineLR, warmup_steps=2),
    )
    seen: list[float] = []

    class RecordLR(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = trainer_factory(max_epochs=2, callbacks=[RecordLR()])
    trainer.fit(model, random_batches)
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.total_steps == 8  # 4 batches x 2 epochs, filled in from the trainer
    assert seen == pytest.approx([base_lr * scheduler.lr_factor(step) for step in range(8)])
    assert seen[:4] == pytest.approx([0.05, 0.1, 0.1, 0.1 * (0.5 + 0.5 * math.cos(math.pi / 6))])


def test_channels_last_switch(trainer_factory, random_batches: DataLoader) -> None:
    model = ImageClassifier("speedrun_net_tiny", channels_last=True)
    trainer = trainer_factory(max_steps=1)
    trainer.fit(model, random_batches)
    conv = model.backbone.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


@pytest.mark.slow
def test_compile_switch_trains_and_keeps_checkpoint_keys(trainer_factory, random_batches: DataLoader) -> None:
    model = ImageClassifier("speedrun_net_tiny", compile=True)
    keys = set(model.state_dict())
    trainer = trainer_factory(max_steps=2)
    trainer.fit(model, random_batches)
    assert model.backbone._compiled_call_impl is not None
    assert set(model.state_dict()) == keys
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_module_backbone_and_num_classes_checks() -> None:
    backbone = zoo.create_model("speedrun_net_tiny", num_classes=4)
    task = ImageClassifier(backbone)
    assert task.num_classes == 4
    assert "backbone" not in task.hparams  # modules are not pickled into checkpoints
    with pytest.raises(ValueError, match=r"num_classes=4 but the task has num_classes=10.*reset_classifier\(10\)"):
        ImageClassifier(backbone, num_classes=10)


def test_label_outside_num_classes_is_named(trainer_factory) -> None:
    loader = _loader(torch.randn(8, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 5, 6, 12]))
    trainer = trainer_factory(max_steps=1)
    with pytest.raises(ValueError, match=r"label 12 is outside \[0, num_classes=10\)"):
        trainer.fit(ImageClassifier("speedrun_net_tiny"), loader)


def test_wrong_channel_count_is_named(trainer_factory) -> None:
    loader = _loader(torch.randn(8, 1, 32, 32), torch.zeros(8, dtype=torch.long))
    trainer = trainer_factory(max_steps=1)
    with pytest.raises(ValueError, match=r"images of shape \(8, 1, 32, 32\).*expects \(B, 3, H, W\)"):
        trainer.fit(ImageClassifier("speedrun_net_tiny"), loader)


def test_backbone_of_another_task_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo import registry

    registry.list_models()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_model(
        lambda **kw: torch.nn.Identity(), name="toy_lm", family="transformer", tasks=("language_modeling",),
        input_spec=registry.InputSpec((8,), "int64"),
    )  # fmt: skip
    with pytest.raises(ValueError, match="not image classification"):
        ImageClassifier("toy_lm")


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="label_smoothing"):
        ImageClassifier("speedrun_net_tiny", label_smoothing=1.0)
    with pytest.raises(ValueError, match="lr_scheduler_interval"):
        ImageClassifier("speedrun_net_tiny", lr_scheduler_interval="batch")


def test_step_values_reach_the_logger_on_its_steps_and_epoch_metrics_still_count_every_batch(
    tmp_path: Path, random_batches: DataLoader, trainer_factory
) -> None:
    import csv

    from lightning.pytorch.loggers import CSVLogger

    class EveryStepLoss(L.Callback):
        def __init__(self) -> None:
            self.losses: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.losses.append(float(pl_module.step_loss))

    seen = EveryStepLoss()
    model = ImageClassifier("speedrun_net_tiny", num_classes=10)
    trainer = trainer_factory(max_epochs=2, logger=CSVLogger(tmp_path), log_every_n_steps=3, callbacks=[seen])
    trainer.fit(model, random_batches)  # 4 batches an epoch
    trainer.logger.save()
    rows = list(csv.DictReader((Path(trainer.logger.log_dir) / "metrics.csv").read_text().splitlines()))
    logged = {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}
    assert sorted(logged) == [2, 5]  # every third step (Lightning's step numbering), as without the policy
    assert all(logged[step] == pytest.approx(seen.losses[step]) for step in logged)
    assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(seen.losses[-1])  # the last step's
    epochs = [r for r in rows if r.get("train/acc1")]
    assert len(epochs) == 2  # once an epoch, from all 4 batches of it
