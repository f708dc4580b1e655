"""DiffusionModel, its schedulers, sampling and `zoo sample`, on tiny generated shapes with the real Trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import zoo
from zoo.callbacks import EMA
from zoo.cli import main as zoo_main
from zoo.data import ShapesDataModule
from zoo.models.diffusion.sampling import make_sampling_scheduler, make_training_scheduler
from zoo.tasks import DiffusionModel

SIDE = 16  # unet_tiny halves the resolution twice: 16 -> 4


def _abar(num_steps: int = 1000) -> torch.Tensor:
    """DDPM's linear schedule, written out: betas from 1e-4 to 0.02, abar_t = prod_{s<=t} (1 - beta_s)."""
    betas = torch.linspace(1e-4, 0.02, num_steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def test_add_noise_and_velocity_follow_the_closed_form() -> None:
    scheduler = make_training_scheduler(prediction_type="v_prediction")
    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 3, 4, 4, generator=generator), torch.randn(3, 3, 4, 4, generator=generator)
    t = torch.tensor([0, 499, 999])
    abar = _abar()[t].float().view(-1, 1, 1, 1)
    expected = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    assert torch.allclose(scheduler.add_noise(x0, noise, t), expected, atol=1e-5)
    velocity = abar.sqrt() * noise - (1 - abar).sqrt() * x0
    assert torch.allclose(scheduler.get_velocity(x0, noise, t), velocity, atol=1e-5)


def test_sampler_steps_follow_the_closed_form_given_the_true_noise() -> None:
    training = make_training_scheduler()
    abar = _abar()
    generator = torch.Generator().manual_seed(1)
    x0 = (torch.rand(2, 3, 4, 4, generator=generator) * 1.6 - 0.8).double()  # inside [-1, 1]: no clipping
    eps = torch.randn(2, 3, 4, 4, generator=generator).double()
    # DDIM (eta 0), 10 steps: from t = 800 it lands exactly on x_700 built from the same x0 and eps.
    ddim = make_sampling_scheduler(training, "ddim", 10)
    t, prev = int(ddim.timesteps[1]), int(ddim.timesteps[2])
    x_t = abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * eps
    stepped = ddim.step(eps.float(), t, x_t.float()).prev_sample
    assert (t, prev) == (800, 700)
    assert torch.allclose(stepped.double(), abar[prev].sqrt() * x0 + (1 - abar[prev]).sqrt() * eps, atol=1e-4)
    # DDPM, all 1000 steps: the posterior mean of x_{t-1} given x_t and x0, plus sqrt(beta_tilde) z.
    ddpm = make_sampling_scheduler(training, "ddpm", 1000)
    t = 500
    beta, alpha = 1 - abar[t] / abar[t - 1], abar[t] / abar[t - 1]
    x_t = abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * eps
    mean = (abar[t - 1].sqrt() * beta * x0 + alpha.sqrt() * (1 - abar[t - 1]) * x_t) / (1 - abar[t])
    std = ((1 - abar[t - 1]) / (1 - abar[t]) * beta).sqrt()
    z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7)).double()
    stepped = ddpm.step(eps.float(), t, x_t.float(), generator=torch.Generator().manual_seed(7)).prev_sample
    assert torch.allclose(stepped.double(), mean + std * z, atol=1e-4)


def _shapes(**overrides) -> ShapesDataModule:
    settings = {"image_size": SIDE, "num_train": 96, "num_val": 32, "num_test": 32, "batch_size": 16}
    return ShapesDataModule(**{**settings, **overrides}, num_workers=0)


def _task(**overrides) -> DiffusionModel:
    data = _shapes()
    settings = {
        "backbone": "unet_tiny", "image_size": SIDE, "in_chans": 3, "num_classes": 3, "mean": data.mean,
        "std": data.std, "sample_steps": 4, "sample_every_n_epochs": 0,
    }  # fmt: skip
    return DiffusionModel(**{**settings, **overrides})


def test_training_lowers_the_loss_on_tiny_shapes(trainer_factory) -> None:
    torch.manual_seed(0)
    task = _task(optimizer=lambda params: torch.optim.AdamW(params, lr=2e-3))
    data = _shapes()
    before = trainer_factory().validate(task, data, verbose=False)[0]["val/loss"]
    trainer_factory(max_epochs=6).fit(task, data)
    after = trainer_factory().validate(task, data, verbose=False)[0]["val/loss"]
    assert after < 0.7 * before  # the validation loss uses fixed noise, so the two figures are comparable


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_sampling_is_deterministic_under_a_seed(sampler: str) -> None:
    torch.manual_seed(0)
    task = _task(conditional=True)
    first = task.sample(3, seed=5, sampler=sampler, steps=3, class_labels=[0, 1, 2], guidance_scale=2.0)
    again = task.sample(3, seed=5, sampler=sampler, steps=3, class_labels=[0, 1, 2], guidance_scale=2.0)
    other = task.sample(3, seed=6, sampler=sampler, steps=3, class_labels=[0, 1, 2], guidance_scale=2.0)
    assert first.shape == (3, 3, SIDE, SIDE) and float(first.min()) >= 0 and float(first.max()) <= 1
    assert torch.equal(first, again) and not torch.equal(first, other)
    in_batches = task.sample(3, seed=5, sampler=sampler, steps=3, class_labels=[0, 1, 2], guidance_scale=2.0,
                             batch_size=2)  # fmt: skip
    assert in_batches.shape == first.shape


def test_bf16_training_steps_are_finite(trainer_factory) -> None:
    task = _task(prediction_type="v_prediction")
    trainer = trainer_factory(max_epochs=1, limit_train_batches=3, precision="bf16-mixed", limit_val_batches=1)
    trainer.fit(task, _shapes())
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"]) and torch.isfinite(metrics["val/loss"])


def _fit_with_ema(tmp_path: Path, trainer_factory, **task_overrides) -> tuple[DiffusionModel, EMA, Path]:
    torch.manual_seed(0)
    task = _task(conditional=True, **task_overrides)
    ema = EMA(decay=0.5, warmup=False)  # a short memory, so the average clearly differs from the last weights
    trainer = trainer_factory(max_steps=4, callbacks=[ema], limit_val_batches=1)
    trainer.fit(task, _shapes())
    path = tmp_path / "diffusion.ckpt"
    trainer.save_checkpoint(path)
    return task, ema, path


def test_checkpoints_sample_with_the_ema_weights(tmp_path: Path, trainer_factory) -> None:
    from zoo.sample import load_diffusion_checkpoint

    task, ema, path = _fit_with_ema(tmp_path, trainer_factory)
    loaded = load_diffusion_checkpoint(path)
    task.backbone.load_state_dict(ema.average)
    assert torch.equal(loaded.sample(2, seed=0), task.sample(2, seed=0))
    raw = load_diffusion_checkpoint(path, raw_weights=True)
    assert not torch.equal(raw.sample(2, seed=0), loaded.sample(2, seed=0))


def test_zoo_sample_writes_pngs(tmp_path: Path, trainer_factory, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, path = _fit_with_ema(tmp_path, trainer_factory)
    out = tmp_path / "samples"
    zoo_main(["sample", "--ckpt_path", str(path), "--out", str(out), "--num_images", "5", "--steps", "3",
              "--class_label", "2", "--sampler", "ddpm", "--device", "cpu"])  # fmt: skip
    files = sorted((out / "images").glob("*.png"))
    assert [f.name for f in files] == [f"{i:05d}.png" for i in range(5)]
    for file in files:
        with Image.open(file) as image:
            assert (image.size, image.mode) == ((SIDE, SIDE), "RGB")
    with Image.open(out / "grid.png") as grid:
        grid.verify()
    assert "wrote 5 images" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        zoo_main(["sample", "--ckpt_path", str(path), "--out", str(out), "--class_label", "3"])
    assert "class label 3 is out of range for a model conditioned on 3 classes" in capsys.readouterr().err


def test_sample_grid_goes_to_tensorboard(tmp_path: Path, trainer_factory) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="run")
    task = _task(sample_every_n_epochs=1, num_sample_images=4)
    trainer_factory(max_epochs=1, limit_train_batches=1, limit_val_batches=1, logger=logger).fit(task, _shapes())
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert "samples" in events.Tags()["images"]
    assert events.Images("samples")[0].width == 2 * (SIDE + 2) + 2  # a 2x2 grid with make_grid's padding


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="image_size 30 is not divisible by the UNet's down-sampling factor 4"):
        zoo.create_model("unet_tiny", image_size=30)
    model = zoo.create_model("unet_tiny", image_size=SIDE)
    with pytest.raises(ValueError, match="image size 18x18 is not divisible by the UNet's down-sampling factor 4"):
        model(torch.randn(1, 3, 18, 18), torch.tensor([1]))
    with pytest.raises(ValueError, match="2000 sampling steps asked for, but the model was trained with 1000"):
        _task().sample(1, steps=2000)
    with pytest.raises(ValueError, match="200 sampling steps asked for, but the model was trained with 100"):
        _task(num_train_timesteps=100, sample_steps=200)
    conditional = _task(conditional=True)
    with pytest.raises(ValueError, match="class label 5 is out of range for a model conditioned on 3 classes"):
        conditional.sample(2, class_labels=[0, 5])
    images = torch.zeros(2, 3, SIDE, SIDE)
    with pytest.raises(ValueError, match="class label 7 is out of range"):
        conditional.training_step((images, torch.tensor([0, 7])), 0)
    with pytest.raises(ValueError, match="class labels were given, but this diffusion model is unconditional"):
        _task().sample(1, class_labels=[0])
    with pytest.raises(ValueError, match=r"images of shape \(2, 3, 8, 8\), but 'unet_tiny' expects \(B, 3, 16, 16\)"):
        _task().training_step((torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long)), 0)


def test_training_flops_are_counted_without_computing() -> None:
    task = _task(conditional=True)
    batch = (torch.zeros(4, 3, SIDE, SIDE), torch.zeros(4, dtype=torch.long))
    flops = task.training_flops(batch)
    assert flops > 0 and task.training_flops((torch.zeros(8, 3, SIDE, SIDE), batch[1].repeat(2))) == 2 * flops
