from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from zoo.callbacks import EMA


class RecordWeights(L.Callback):
    """Snapshot the backbone at the start and after every optimizer step (placed before EMA)."""

    def __init__(self) -> None:
        self.initial: dict[str, torch.Tensor] = {}
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        self.initial = {k: v.clone() for k, v in pl_module.backbone.state_dict().items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.snapshots.append({k: v.clone() for k, v in pl_module.backbone.state_dict().items()})


def _replay(ema: EMA, recorder: RecordWeights, steps: list[int]) -> dict[str, torch.Tensor]:
    """The closed-form average: start from the initial weights, fold in the snapshots of the given steps."""
    average = dict(recorder.initial)
    for t, step in enumerate(steps):
        decay = min(ema.decay, 1 - (1 + t / ema.warmup_gamma) ** -ema.warmup_power) if ema.warmup else ema.decay
        for name, value in recorder.snapshots[step].items():
            floating = value.is_floating_point()
            average[name] = decay * average[name] + (1 - decay) * value if floating else value.clone()
    return average


@pytest.mark.parametrize(
    ("kwargs", "steps"),
    [
        ({"decay": 0.9, "warmup": True}, list(range(8))),
        ({"decay": 0.7, "warmup": False}, list(range(8))),
        ({"decay": 0.9, "update_every_n_steps": 3, "start_step": 1}, [1, 4, 7]),
    ],
)
def test_average_matches_the_closed_form(kwargs, steps, tiny_task, tiny_loader, trainer_factory) -> None:
    recorder, ema = RecordWeights(), EMA(**kwargs)
    trainer = trainer_factory(max_steps=8, callbacks=[recorder, ema], limit_val_batches=0)
    trainer.fit(tiny_task, tiny_loader)
    expected = _replay(ema, recorder, steps)
    assert ema.num_updates == len(steps)
    assert set(ema.average) == set(expected)
    for name, value in expected.items():
        assert torch.allclose(ema.average[name], value, atol=1e-6), name
    # BatchNorm statistics are averaged, its step counter copied
    assert ema.average["1.num_batches_tracked"] == recorder.snapshots[steps[-1]]["1.num_batches_tracked"]
    assert not torch.equal(ema.average["1.running_mean"], tiny_task.backbone.state_dict()["1.running_mean"])


def test_warmup_starts_with_a_copy_and_approaches_decay() -> None:
    ema = EMA(decay=0.999)
    assert ema.decay_at(0) == 0.0
    assert ema.decay_at(10) == pytest.approx(1 - 11**-0.75)
    assert ema.decay_at(10**9) == 0.999
    assert EMA(decay=0.999, warmup=False).decay_at(0) == 0.999


def test_evaluation_uses_the_average_and_training_weights_come_back(tiny_task, tiny_loader, trainer_factory) -> None:
    seen: dict[str, dict[str, torch.Tensor]] = {}

    class Spy(L.Callback):
        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            seen["val"] = {k: v.clone() for k, v in pl_module.backbone.state_dict().items()}

        def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            seen["test"] = {k: v.clone() for k, v in pl_module.backbone.state_dict().items()}

    ema = EMA(decay=0.5)
    trainer = trainer_factory(max_steps=4, callbacks=[ema, Spy()], num_sanity_val_steps=0)
    trainer.fit(tiny_task, tiny_loader, tiny_loader)
    trained = {k: v.clone() for k, v in tiny_task.backbone.state_dict().items()}
    trainer.test(tiny_task, tiny_loader, verbose=False)
    for stage in ("val", "test"):
        assert all(torch.equal(seen[stage][k], ema.average[k]) for k in trained), stage
    assert all(torch.equal(tiny_task.backbone.state_dict()[k], v) for k, v in trained.items())
    assert not torch.equal(trained["0.weight"], ema.average["0.weight"])


def test_switch_evaluates_the_trained_weights(tiny_task, tiny_loader, trainer_factory) -> None:
    ema = EMA(decay=0.5, evaluate_with_ema=False)
    trainer = trainer_factory(max_steps=4, callbacks=[ema], num_sanity_val_steps=0)
    trainer.fit(tiny_task, tiny_loader)
    expected = trainer.validate(tiny_task, tiny_loader, verbose=False)
    plain = trainer_factory().validate(tiny_task, tiny_loader, verbose=False)
    assert expected == plain


def test_checkpoint_holds_average_as_state_dict_and_resumes(
    tiny_task, tiny_loader, trainer_factory, tmp_path: Path
) -> None:
    ema = EMA(decay=0.8)
    trainer = trainer_factory(max_epochs=1, callbacks=[ema], limit_val_batches=0)
    trainer.fit(tiny_task, tiny_loader)
    path = tmp_path / "ema.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert torch.equal(checkpoint["state_dict"]["backbone.0.weight"], ema.average["0.weight"])
    assert torch.equal(checkpoint["current_model_state"]["backbone.0.weight"], tiny_task.backbone[0].weight)
    assert checkpoint["callbacks"]["EMA"] == {"num_updates": 4, "last_update_step": 3}

    # Resume for a second epoch, and compare with two epochs straight.
    resumed_ema = EMA(decay=0.8)
    torch.manual_seed(1)
    resumed = type(tiny_task)(type(tiny_task.backbone)(), in_chans=1, optimizer=tiny_task.optimizer_factory)
    trainer_factory(max_epochs=2, callbacks=[resumed_ema], limit_val_batches=0).fit(
        resumed, tiny_loader, ckpt_path=path
    )

    straight_ema = EMA(decay=0.8)
    torch.manual_seed(0)
    straight = type(tiny_task)(type(tiny_task.backbone)(), in_chans=1, optimizer=tiny_task.optimizer_factory)
    trainer_factory(max_epochs=2, callbacks=[straight_ema], limit_val_batches=0).fit(straight, tiny_loader)

    assert resumed_ema.num_updates == straight_ema.num_updates == 8
    for name, value in straight_ema.average.items():
        assert torch.equal(resumed_ema.average[name], value), name
    for name, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name


def test_test_from_checkpoint_uses_the_average_unless_switched_off(
    tiny_task, tiny_loader, trainer_factory, tmp_path: Path
) -> None:
    trainer = trainer_factory(max_steps=4, callbacks=[EMA(decay=0.5)], limit_val_batches=0)
    trainer.fit(tiny_task, tiny_loader)
    path = tmp_path / "ema.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)

    def weights_during_test(ema: EMA) -> torch.Tensor:
        captured = {}

        class Spy(L.Callback):
            def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
                captured["w"] = pl_module.backbone[0].weight.clone()

        trainer_factory(callbacks=[ema, Spy()]).test(tiny_task, tiny_loader, ckpt_path=path, verbose=False)
        return captured["w"]

    assert torch.equal(weights_during_test(EMA()), checkpoint["state_dict"]["backbone.0.weight"])
    assert torch.equal(
        weights_during_test(EMA(evaluate_with_ema=False)), checkpoint["current_model_state"]["backbone.0.weight"]
    )


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5, -0.1])
def test_decay_outside_the_open_unit_interval_is_rejected(decay: float) -> None:
    with pytest.raises(ValueError, match=rf"EMA decay must be in \(0, 1\), got {decay}"):
        EMA(decay=decay)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="Lightning's FSDP needs a CUDA device")
def test_fsdp_is_refused_with_the_reason(tiny_task, tiny_loader, trainer_factory) -> None:
    trainer = trainer_factory(accelerator="cuda", strategy="fsdp", max_steps=1, callbacks=[EMA()])
    try:
        with pytest.raises(RuntimeError, match=r"EMA does not support FSDPStrategy.*Train with DDP"):
            trainer.fit(tiny_task, tiny_loader)
    finally:  # FSDP set up a process group; later single-process tests must not inherit it
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
