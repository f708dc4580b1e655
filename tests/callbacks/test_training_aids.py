"""Fine-tuning schedule, layer-wise LR decay, non-finite loss guard, throughput, LR monitor, clipping."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from zoo.callbacks import (
    FreezeBackbone,
    NonFiniteLossError,
    ResumableCheckpoint,
    StopOnNonFiniteLoss,
    ThroughputMonitor,
)
from zoo.lightning_cli import ZooLightningCLI
from zoo.optim import WarmupCosineLR
from zoo.tasks import ImageClassifier


def _images(n: int = 32, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    images, labels = torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator)
    return DataLoader(TensorDataset(images, labels), batch_size=8)


def test_freeze_backbone_trains_only_the_head_then_everything_at_a_lower_rate(trainer_factory) -> None:
    task = ImageClassifier(
        "resnet18_cifar",
        optimizer=partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=5e-4),
        lr_scheduler=partial(WarmupCosineLR, warmup_steps=0),
    )
    start = {k: v.clone() for k, v in task.backbone.state_dict().items()}
    seen = []

    class Spy(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            state = pl_module.backbone.state_dict()
            groups = trainer.optimizers[0].param_groups
            seen.append(
                {
                    "layer1_moved": not torch.equal(state["layer1.0.conv1.weight"], start["layer1.0.conv1.weight"]),
                    "fc_moved": not torch.equal(state["fc.weight"], start["fc.weight"]),
                    "groups": [(len(g["params"]), g["lr"], g.get("weight_decay")) for g in groups],
                    "head_lr": groups[0]["lr"],
                }
            )

    trainer = trainer_factory(
        max_epochs=3, callbacks=[FreezeBackbone(unfreeze_at_epoch=1, backbone_lr_ratio=0.1), Spy()]
    )
    trainer.fit(task, _images())
    assert seen[0]["fc_moved"] and not seen[0]["layer1_moved"]  # epoch 0: the head only
    assert len(seen[0]["groups"]) == 2  # fc.weight decayed, fc.bias not
    assert seen[1]["layer1_moved"] and len(seen[1]["groups"]) == 4  # body added as decay + no-decay groups
    for _, lr, _ in seen[1]["groups"][2:]:
        assert lr == pytest.approx(0.1 * seen[1]["head_lr"])  # follows the schedule at a tenth of the head
    assert seen[1]["groups"][3][2] == 0.0  # norm and bias weights of the body are not decayed


def test_layer_decay_scales_rates_from_head_to_stem() -> None:
    task = ImageClassifier("resnet18_cifar", layer_decay=0.5, optimizer=partial(torch.optim.SGD, lr=1.0))
    optimizer = task.configure_optimizers()
    names = {id(p): n for n, p in task.backbone.named_parameters()}
    rate = {names[id(p)]: group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert rate["fc.weight"] == 1.0
    assert rate["layer4.1.conv2.weight"] == 0.5 and rate["conv1.weight"] < rate["layer1.0.conv1.weight"] < 0.5
    assert all("weight_decay" not in g or g["weight_decay"] == 0.0 for g in optimizer.param_groups)
    with pytest.raises(ValueError, match="layer_decay needs a backbone that splits into layers"):
        ImageClassifier("speedrun_net_tiny", layer_decay=0.5)
    with pytest.raises(ValueError, match="layer_decay must be in"):
        ImageClassifier("resnet18_cifar", layer_decay=1.5)


def test_non_finite_loss_stops_before_the_optimizer_step_and_names_the_checkpoint(
    tmp_path: Path, trainer_factory
) -> None:
    task = ImageClassifier("speedrun_net_tiny", optimizer=partial(torch.optim.SGD, lr=0.1))

    class PoisonThirdBatch(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 3:
                batch[0][0, 0, 0, 0] = float("nan")

    checkpoint = ResumableCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=0)
    snapshot = {}

    class Snapshot(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            snapshot.update({k: v.clone() for k, v in pl_module.backbone.named_parameters()})

    trainer = trainer_factory(
        max_steps=10,
        enable_checkpointing=True,
        callbacks=[PoisonThirdBatch(), StopOnNonFiniteLoss(), Snapshot(), checkpoint],
    )
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 3 \(epoch 0, batch 3\).*ckpt/last.ckpt"):
        trainer.fit(task, _images())
    parameters = dict(task.backbone.named_parameters())
    assert all(torch.equal(parameters[k], v) for k, v in snapshot.items())  # no update was applied
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["global_step"] == 2  # left as it was


@pytest.mark.parametrize(
    ("max_steps", "images", "started"),
    [(10, 64, [0, 1, 2, 3, 4]), (10, 32, [0, 1, 2, 3]), (4, 64, [0, 1, 2, 3])],
    ids=["caught-at-the-next-step", "caught-at-the-end-of-the-epoch", "caught-at-the-end-of-training"],
)
def test_deferred_verdict_names_the_bad_step_without_stalling_and_saves_no_bad_state(
    max_steps: int, images: int, started: list[int], tmp_path: Path, trainer_factory
) -> None:
    """The CUDA default, forced on a CPU: the verdict of step 3 is read at step 4, or when the epoch or run ends."""
    task = ImageClassifier("speedrun_net_tiny", optimizer=partial(torch.optim.SGD, lr=0.1))
    steps_started = []

    class PoisonThirdBatch(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            steps_started.append(trainer.global_step)
            if trainer.global_step == 3:
                batch[0][0, 0, 0, 0] = float("nan")

    checkpoint = ResumableCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=0)
    trainer = trainer_factory(
        max_steps=max_steps,
        enable_checkpointing=True,
        callbacks=[PoisonThirdBatch(), StopOnNonFiniteLoss(defer=True), checkpoint],
    )
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 3 \(epoch 0, batch 3\); its update was applied"):
        trainer.fit(task, _images(images))
    assert steps_started == started  # one step late at most
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["global_step"] == 2  # no NaN state saved


def test_throughput_monitor_logs_samples_and_flops_per_second(tmp_path: Path, trainer_factory) -> None:
    task = ImageClassifier("speedrun_net_tiny")
    logger = CSVLogger(tmp_path)
    trainer = trainer_factory(
        max_steps=4, logger=logger, log_every_n_steps=1, callbacks=[ThroughputMonitor(window_size=2)]
    )
    trainer.fit(task, _images())
    metrics = (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train/device/samples_per_sec" in metrics and "train/device/flops_per_sec" in metrics
    # forward + backward of the tiny network: about 3x its forward multiply-adds, times 2 FLOPs each
    assert 8 * 2 * 2 * 20e6 < task.flops_per_batch < 8 * 3 * 2 * 30e6


@pytest.mark.parametrize(
    ("precision", "accelerator"),
    [
        ("bf16-mixed", "cpu"),
        pytest.param(
            "16-mixed", "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 AMP needs CUDA")
        ),
    ],
)
def test_gradient_clipping_holds_under_mixed_precision(precision: str, accelerator: str, trainer_factory) -> None:
    task = ImageClassifier("speedrun_net_tiny", optimizer=partial(torch.optim.SGD, lr=10.0))
    norms = []

    class RecordNorm(L.Callback):
        def on_fit_start(self, trainer, pl_module):
            def after_step(optimizer, args, kwargs):  # the gradients the step used (unscaled, clipped)
                grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
                norms.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())

            trainer.optimizers[0].register_step_post_hook(after_step)

    trainer = trainer_factory(
        max_steps=3,
        precision=precision,
        accelerator=accelerator,
        gradient_clip_val=0.05,
        callbacks=[RecordNorm()],
    )
    trainer.fit(task, _images())
    assert len(norms) == 3 and all(n <= 0.05 * (1 + 1e-3) for n in norms), norms


def test_cli_adds_lr_monitor_and_guard_and_accepts_early_stopping(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = ZooLightningCLI(
        args=[
            "fit", "--config", str(repo / "recipes/quickstart.yaml"),
            "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.enable_progress_bar", "false", "--data.init_args.num_workers", "0", "--test_after_fit", "false",
            "--trainer.log_every_n_steps", "1",
            "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/loss",
            "--trainer.callbacks.patience", "0", "--trainer.callbacks.min_delta", "100",
        ]
    )  # fmt: skip
    names = {type(cb).__name__ for cb in cli.trainer.callbacks}
    assert {"LearningRateMonitor", "StopOnNonFiniteLoss", "EarlyStopping", "ResumableCheckpoint"} <= names
    assert cli.trainer.current_epoch == 2  # stopped by EarlyStopping before max_epochs
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "runs" / "quickstart" / "version_0")).Reload()
    assert any(tag.startswith("lr-SGD") for tag in events.Tags()["scalars"]), events.Tags()["scalars"]


def test_a_non_finite_state_is_never_saved_and_the_guard_names_the_last_finite_checkpoint(
    tmp_path: Path, trainer_factory
) -> None:
    """lr 1e6-style blow-ups poison normalisation statistics before the loss turns NaN; no checkpoint keeps them."""
    task = ImageClassifier("speedrun_net_tiny", optimizer=partial(torch.optim.SGD, lr=0.1))

    class PoisonStatisticsThenLoss(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 3:
                next(m for m in pl_module.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_var.fill_(
                    float("inf")
                )

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 5:
                batch[0][0, 0, 0, 0] = float("nan")

    checkpoint = ResumableCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=0)
    trainer = trainer_factory(
        max_steps=10,
        enable_checkpointing=True,
        callbacks=[PoisonStatisticsThenLoss(), StopOnNonFiniteLoss(), checkpoint],
    )
    skipped = r"not saving .*last\.ckpt at step 4: backbone\..*running_var holds NaN"
    with pytest.warns(UserWarning, match=skipped), pytest.raises(NonFiniteLossError, match=r"from .*ckpt/last\.ckpt"):
        trainer.fit(task, _images())
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 2
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values() if t.is_floating_point())


def test_a_step_bounded_run_shows_a_sensible_epoch_in_the_progress_bar(trainer_factory) -> None:
    from zoo.callbacks import ZooProgressBar

    for bounds, shown in (({"max_steps": 2000}, "Epoch 3 (of a 2000-step run)"), ({"max_epochs": 5}, "Epoch 3/4")):
        bar = ZooProgressBar()
        bar.setup(trainer_factory(**bounds, callbacks=[bar], enable_progress_bar=True), None, "fit")
        assert bar._get_train_description(3).strip() == shown  # Lightning shows "Epoch 3/-2" for the first


def test_the_progress_bar_shows_each_steps_loss_without_waiting_for_a_device_more_than_once_a_second(
    trainer_factory,
) -> None:
    from zoo.callbacks import ZooProgressBar

    bar = ZooProgressBar(loss_every_seconds=3600)
    trainer = trainer_factory(max_steps=1, callbacks=[bar], enable_progress_bar=True)
    task = ImageClassifier("speedrun_net_tiny", num_classes=10)
    trainer.state.stage = "train"  # what the bar sees while training

    class OnDevice(torch.Tensor):
        """A CPU tensor that reports another device, so the bar treats it as an accelerator's value."""

        @property
        def device(self) -> torch.device:
            return torch.device("meta")

    shown = []
    for value in (1.5, 2.5):
        task.step_loss = torch.tensor(value)
        shown.append(bar.get_metrics(trainer, task)["train/loss"])
    assert shown == ["1.500", "2.500"]  # a CPU value is read at every step
    bar._read_at = -math.inf  # a fresh bar on an accelerator
    for value in (3.5, 4.5):
        task.step_loss = torch.tensor(value).as_subclass(OnDevice)
        shown.append(bar.get_metrics(trainer, task)["train/loss"])
    assert shown[2:] == ["3.500", "3.500"]  # an accelerator's at most once per loss_every_seconds
