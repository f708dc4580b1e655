"""The sampling loop, apart from both the denoiser and the noise schedule (as diffusers keeps them).

Schedulers come from diffusers: training uses ``DDPMScheduler`` (``add_noise``, ``get_velocity``), and
sampling takes ``DDPMScheduler`` (ancestral, stochastic) or ``DDIMScheduler`` (deterministic with ``eta=0``)
built from the same configuration, so the noise levels always match the ones the model was trained on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from zoo.errors import ConfigError

if TYPE_CHECKING:
    from diffusers import SchedulerMixin

__all__ = ["SAMPLERS", "make_sampling_scheduler", "make_training_scheduler", "sample_images"]

SAMPLERS = ("ddpm", "ddim")


def make_training_scheduler(
    num_train_timesteps: int = 1000,
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear",
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon",
) -> Any:
    """The DDPM noise schedule the model is trained on (diffusers ``DDPMScheduler``)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=beta_schedule,
        prediction_type=prediction_type,
        clip_sample=True,
    )


def make_sampling_scheduler(training: SchedulerMixin, sampler: str, steps: int) -> Any:
    """A ``sampler`` scheduler with ``training``'s noise levels, set to take ``steps`` steps.

    Raises:
        ValueError: For an unknown sampler, or more steps than the model was trained with timesteps.
    """
    from diffusers import DDIMScheduler, DDPMScheduler

    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
    trained = int(training.config.num_train_timesteps)
    if not 1 <= steps <= trained:
        raise ConfigError(
            f"{steps} sampling steps asked for, but the model was trained with {trained} timesteps (1..{trained})"
        )
    kind = DDIMScheduler if sampler == "ddim" else DDPMScheduler
    scheduler = kind.from_config(training.config)
    scheduler.set_timesteps(steps)
    return scheduler


@torch.no_grad()
def sample_images(
    denoiser: nn.Module,
    scheduler: SchedulerMixin,
    shape: tuple[int, int, int, int],
    generator: torch.Generator,
    class_labels: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    eta: float = 0.0,
) -> torch.Tensor:
    """Run the reverse process from pure noise to images.

    All noise is drawn on the CPU from ``generator`` and then moved, so a seed gives the same images on any
    device (up to the device's arithmetic).

    Args:
        denoiser: ``(x, t, class_labels) -> prediction``, already on its device and in eval mode.
        scheduler: A sampling scheduler whose timesteps are set (:func:`make_sampling_scheduler`).
        shape: ``(N, C, H, W)`` of the images to make.
        generator: A CPU generator.
        class_labels: ``(N,)`` classes for a conditional denoiser, or ``None``.
        guidance_scale: Classifier-free guidance ``w``: the prediction is ``uncond + w * (cond - uncond)``;
            1 is plain conditional sampling and needs one forward pass per step instead of two.
        eta: DDIM's stochasticity (0: deterministic); ignored by DDPM.

    Returns:
        ``(N, C, H, W)`` float32 images in ``[-1, 1]``.
    """
    device = next(denoiser.parameters()).device
    x = torch.randn(shape, generator=generator).to(device) * scheduler.init_noise_sigma
    guided = class_labels is not None and guidance_scale != 1.0
    if guided:
        null = torch.full_like(class_labels, denoiser.null_class)
        labels = torch.cat([class_labels, null])
    step_kwargs: dict[str, Any] = {"eta": eta} if "eta" in _step_parameters(scheduler) else {}
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)
        timesteps = t.to(device).expand(shape[0])
        if guided:
            both = denoiser(torch.cat([model_input, model_input]), timesteps.repeat(2), labels).float()
            conditional, unconditional = both.chunk(2)
            prediction = unconditional + guidance_scale * (conditional - unconditional)
        else:
            prediction = denoiser(model_input, timesteps, class_labels).float()
        x = scheduler.step(prediction, t, x, generator=generator, **step_kwargs).prev_sample
    return x.float().clamp(-1, 1)


def _step_parameters(scheduler: SchedulerMixin) -> set[str]:
    import inspect

    return set(inspect.signature(scheduler.step).parameters)
