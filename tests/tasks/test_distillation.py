"""Knowledge distillation: the loss, a frozen teacher kept out of checkpoints, mixing, and a student that follows."""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch

from zoo.callbacks import MixupCutmix
from zoo.data import CIFAR10DataModule, TextClassificationDataModule
from zoo.errors import ConfigError
from zoo.tasks import ImageClassifier, TextClassifier
from zoo.tasks.losses import distillation_loss


def _student(teacher: Path | None, alpha: float = 0.5, temperature: float = 4.0) -> ImageClassifier:
    torch.manual_seed(0)
    return ImageClassifier("speedrun_net_tiny", num_classes=10, teacher=None if teacher is None else str(teacher),
                           distill_alpha=alpha, distill_temperature=temperature,
                           optimizer=partial(torch.optim.SGD, lr=0.2, momentum=0.9, nesterov=True))  # fmt: skip


def _data() -> CIFAR10DataModule:
    return CIFAR10DataModule(variant="mini", batch_size=32, num_workers=0)


def _fit(task: ImageClassifier, trainer_factory, steps: int, **trainer: object) -> L.Trainer:
    fit = trainer_factory(max_steps=steps, limit_val_batches=0, **trainer)
    L.seed_everything(0, verbose=False)
    fit.fit(task, _data())
    return fit


def test_the_soft_loss_is_hintons_kl_at_temperature_scaled_by_t_squared() -> None:
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    t = 3.0
    p_teacher = (teacher / t).softmax(-1)
    expected = (p_teacher * (p_teacher.log() - (student / t).log_softmax(-1))).sum(-1).mean() * t**2
    assert distillation_loss(student, teacher, t) == pytest.approx(float(expected), rel=1e-5)
    assert float(distillation_loss(teacher, teacher, t)) == pytest.approx(0.0, abs=1e-6)


def test_alpha_zero_trains_exactly_as_without_a_teacher(trained_cnn: Path, trainer_factory) -> None:
    plain, distilled = _student(None), _student(trained_cnn, alpha=0.0)
    _fit(plain, trainer_factory, 2)
    _fit(distilled, trainer_factory, 2)
    assert all(
        torch.equal(a, b) for a, b in zip(plain.state_dict().values(), distilled.state_dict().values(), strict=True)
    )


def test_the_teacher_is_frozen_sees_the_mixed_images_and_stays_out_of_the_checkpoint(
    trained_cnn: Path, trainer_factory, tmp_path: Path
) -> None:
    student = _student(trained_cnn)
    seen: dict[str, list[torch.Tensor]] = {"student": [], "teacher": []}
    student.backbone.register_forward_pre_hook(lambda _m, args: seen["student"].append(args[0].clone()))
    teacher = student.teacher
    teacher.backbone.register_forward_pre_hook(lambda _m, args: seen["teacher"].append(args[0].clone()))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer = _fit(student, trainer_factory, 3, callbacks=[MixupCutmix(mixup_alpha=0.8, cutmix_alpha=0.0)])
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items()) and not teacher.training
    assert len(seen["teacher"]) == 3
    assert all(torch.equal(a, b) for a, b in zip(seen["student"], seen["teacher"], strict=True))
    trainer.save_checkpoint(tmp_path / "student.ckpt")
    saved = torch.load(tmp_path / "student.ckpt", weights_only=True)
    assert set(saved["state_dict"]) == set(student.state_dict())  # the student's weights, nothing of the teacher
    assert saved["hyper_parameters"]["teacher"] == str(trained_cnn)
    assert not any(p is q for p in student.parameters() for q in teacher.parameters())


def test_a_distilled_student_moves_toward_its_teacher(trained_cnn: Path, trainer_factory) -> None:
    # The fixture's teacher is soft (label smoothing, 60 steps): at temperature 1 its targets still carry signal.
    student = _student(trained_cnn, alpha=1.0, temperature=1.0)
    images = next(iter(_data_loader()))[0]

    def kl() -> float:
        with torch.no_grad():
            return float(distillation_loss(student.eval()(images), student.teacher(images), 1.0))

    start = kl()
    _fit(student.train(), trainer_factory, 20)
    assert kl() < 0.85 * start  # measured: 0.196 -> 0.149 in 20 steps


def _data_loader() -> torch.utils.data.DataLoader:
    data = _data()
    data.prepare_data()
    data.setup("fit")
    return data.train_dataloader()


def test_a_teacher_with_other_classes_or_no_file_fails_before_training(trained_cnn: Path, tmp_path: Path) -> None:
    student = ImageClassifier("speedrun_net_tiny", num_classes=7, teacher=str(trained_cnn))
    with pytest.raises(ConfigError, match=r"has 10 classes but the student has 7"):
        student.setup("fit")
    with pytest.raises(ConfigError, match=r"is not a file: give the checkpoint of a trained zoo classifier"):
        ImageClassifier("speedrun_net_tiny", num_classes=10, teacher=str(tmp_path / "missing.ckpt")).setup("fit")
    with pytest.raises(ConfigError, match=r"distill_alpha must be in \[0, 1\], got 1.5"):
        ImageClassifier("speedrun_net_tiny", teacher=str(trained_cnn), distill_alpha=1.5)


def test_text_classifiers_distil_too(tmp_path: Path, trainer_factory) -> None:
    rows = [("a wonderful film", "pos"), ("truly great acting", "pos"), ("a terrible film", "neg"),
            ("truly awful acting", "neg")] * 8  # fmt: skip
    with (tmp_path / "train.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    data = TextClassificationDataModule(train_file=str(tmp_path / "train.csv"), vocab_size=60, batch_size=8)
    torch.manual_seed(0)
    teacher = TextClassifier("bert_tiny", num_classes=2, vocab_size=data.vocab_size)
    hparams = {"_class_path": "zoo.tasks.TextClassifier", **dict(teacher.hparams)}
    torch.save({"state_dict": teacher.state_dict(), "hyper_parameters": hparams}, tmp_path / "teacher.ckpt")
    teacher_path = str(tmp_path / "teacher.ckpt")
    student = TextClassifier("bert_tiny", num_classes=2, vocab_size=data.vocab_size, teacher=teacher_path,
                             backbone_kwargs={"num_hidden_layers": 1})  # fmt: skip
    calls = []
    student.teacher.backbone.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape))
    trainer_factory(max_steps=3, limit_val_batches=0).fit(student, data)
    assert len(calls) == 3 and all(shape[0] == 8 for shape in calls)  # the teacher scored every training batch
    assert not any(key.startswith("_teacher") or "teacher." in key for key in student.state_dict())
