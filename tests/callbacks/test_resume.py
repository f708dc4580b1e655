"""Train N steps straight, or k steps then resume for N - k: the two runs must end bitwise equal on CPU."""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from zoo.callbacks import EMA, MixupCutmix, ResumableCheckpoint
from zoo.data import CIFAR10DataModule
from zoo.optim import WarmupCosineLR
from zoo.tasks import ImageClassifier

TOTAL_STEPS, STOP_AT, BATCHES_PER_EPOCH = 12, 9, 6  # the stop falls in the middle of the second epoch


def _run(
    root: Path,
    name: str,
    max_steps: int,
    ckpt_path: str | None = None,
    every: int | None = None,
    on_device: bool = False,
) -> tuple[L.Trainer, ImageClassifier, EMA]:
    L.seed_everything(0)
    task = ImageClassifier(
        "speedrun_net_tiny",
        backbone_kwargs={"drop_rate": 0.2},  # dropout draws from the global torch RNG
        label_smoothing=0.1,
        optimizer=partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=5e-4),
        lr_scheduler=partial(WarmupCosineLR, warmup_steps=3, total_steps=TOTAL_STEPS),
    )
    data = CIFAR10DataModule(variant="mini", batch_size=16, num_workers=2, on_device=on_device)
    ema = EMA(decay=0.9)
    checkpoint = ResumableCheckpoint(dirpath=root / "ckpt", every_n_train_steps=every, save_top_k=0)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        limit_train_batches=BATCHES_PER_EPOCH,
        limit_val_batches=2,
        log_every_n_steps=1,
        logger=CSVLogger(root, name=name),
        callbacks=[ema, MixupCutmix(), checkpoint],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, data, ckpt_path=ckpt_path)
    return trainer, task, ema


def _logged(trainer: L.Trainer) -> list[dict[str, str]]:
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize("on_device", [False, True], ids=["workers", "images_on_device"])
def test_mid_epoch_resume_is_exact_with_ema_mixup_dropout_and_workers(tmp_path: Path, on_device: bool) -> None:
    straight, straight_task, straight_ema = _run(tmp_path / "straight", "straight", TOTAL_STEPS, on_device=on_device)
    _run(tmp_path / "stopped", "first", STOP_AT, every=STOP_AT, on_device=on_device)
    last = tmp_path / "stopped" / "ckpt" / "last.ckpt"
    resumed, resumed_task, resumed_ema = _run(
        tmp_path / "stopped", "second", TOTAL_STEPS, ckpt_path=str(last), on_device=on_device
    )

    assert resumed.global_step == straight.global_step == TOTAL_STEPS
    for name, value in straight_task.state_dict().items():
        assert torch.equal(resumed_task.state_dict()[name], value), name
    straight_opt, resumed_opt = straight.optimizers[0].state_dict(), resumed.optimizers[0].state_dict()
    for index, state in straight_opt["state"].items():
        assert torch.equal(resumed_opt["state"][index]["momentum_buffer"], state["momentum_buffer"])
    assert [g["lr"] for g in resumed_opt["param_groups"]] == [g["lr"] for g in straight_opt["param_groups"]]
    assert resumed_ema.num_updates == straight_ema.num_updates == TOTAL_STEPS
    for name, value in straight_ema.average.items():
        assert torch.equal(resumed_ema.average[name], value), name

    # Logged metrics of the resumed steps (and the epoch ends they reach) are those of the straight run.
    straight_rows = {(r["step"], k): v for r in _logged(straight) for k, v in r.items() if v and k != "step"}
    resumed_rows = {(r["step"], k): v for r in _logged(resumed) for k, v in r.items() if v and k != "step"}
    assert resumed_rows and all(int(step) >= STOP_AT - 1 for step, _ in resumed_rows)
    assert {key: straight_rows[key] for key in resumed_rows} == resumed_rows
    assert any(key[1] == "train/acc1" for key in resumed_rows)  # the epoch-level metric spans the resume
