"""Denoising diffusion (DDPM training; DDPM or DDIM sampling) with any denoiser registered for it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from typing_extensions import override

from zoo.callbacks.diffusion import DiffusionFID, DiffusionSampleGrid
from zoo.errors import ConfigError, DataError
from zoo.models.diffusion.sampling import make_sampling_scheduler, make_training_scheduler, sample_images
from zoo.models.diffusion.unet import check_class_labels
from zoo.tasks.base import BackboneCall, CompileOption, ZooTask, backbone_attribute
from zoo.tasks.signature import InferenceSignature, NoiseInput, TensorSpec, json_ready

__all__ = ["DiffusionModel"]


class DiffusionModel(ZooTask):
    """Train a denoiser on DDPM's forward process and sample images with DDPM or DDIM.

    Training draws a timestep ``t`` uniformly from ``0..num_train_timesteps - 1`` and Gaussian noise ``eps``
    per image, forms ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` with diffusers' ``DDPMScheduler`` and
    regresses the denoiser's output onto ``eps`` (``prediction_type="epsilon"``) or onto the velocity
    ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0`` (``"v_prediction"``), with a mean squared error computed
    in float32 (so ``bf16-mixed`` training only runs the network in bf16). Validation and test compute the
    same loss with noise and timesteps fixed per batch, so the figure is comparable across epochs.

    Images arrive normalised by the data module (``mean``, ``std``, linked by ``zoo fit``) and are mapped to
    ``[-1, 1]``, the range DDPM assumes; samples are returned in ``[0, 1]``.

    Sampling uses whatever weights the module holds. With the ``zoo.callbacks.EMA`` callback those are the
    averaged weights during validation and test (so the sample grids and FID use them), and a checkpoint's
    ``state_dict`` is the average, so ``DiffusionModel.load_from_checkpoint`` and ``zoo sample`` sample with
    EMA weights by default.

    Class conditioning (``conditional=True``) trains with each label replaced by "no class" with probability
    ``class_dropout``, which enables classifier-free guidance (``guidance_scale > 1``) when sampling.

    Args:
        backbone: Registry name of a denoiser (``"unet_tiny"``, ``"unet_small"``, ``"ddpm_unet_cifar"``) or a
            module ``(x, t, class_labels) -> prediction`` with ``image_size``, ``in_channels`` and
            ``num_classes`` attributes (and ``null_class`` when conditional).
        image_size: Side of the square images; linked from the data module. Defaults to the model's.
        in_chans: Image channels; linked from the data module. Defaults to the model's.
        num_classes: Classes in the data; linked from the data module. Used only when ``conditional``.
        conditional: Condition the denoiser on the class labels of the batches.
        class_dropout: Probability of training a sample without its class (conditional models only).
        mean: Per-channel mean the data module normalised with; ``None`` when batches are already in ``[-1, 1]``.
        std: Per-channel standard deviation the data module normalised with.
        num_train_timesteps: Steps of the forward (noising) process.
        beta_schedule: diffusers' noise schedule name (``"linear"`` as in DDPM, ``"squaredcos_cap_v2"`` cosine).
        prediction_type: ``"epsilon"`` or ``"v_prediction"``.
        sampler: Default sampler, ``"ddpm"`` or ``"ddim"``.
        sample_steps: Default number of sampling steps (at most ``num_train_timesteps``).
        guidance_scale: Default classifier-free guidance scale; 1 is none.
        sample_every_n_epochs: Log a grid of samples to the logger every n validation epochs; 0 never. The task
            adds a :class:`zoo.callbacks.DiffusionSampleGrid` for it (set 0 to configure that callback yourself).
        num_sample_images: Images in that grid.
        fid_num_images: Images to generate at test time for the FID against the test images; 0 skips it. The
            task adds a :class:`zoo.callbacks.DiffusionFID` for it.
        fid_features: Features for that FID: ``None`` for zoo's CIFAR-10 classifier (logged as
            ``test/fid_zoo_classifier``; not the standard FID), a path to a zoo image classifier checkpoint,
            or ``"inception:<path>"`` for the standard Inception-v3 weights file (``test/fid_inception``).
        backbone_kwargs: Extra builder arguments for a named backbone (``dropout``, ``block_out_channels``, ...).
        pretrained: Start from a weight card of the named backbone: its tag (``"cifar10"``, see ``zoo weights``)
            or ``True`` for the first; another class count keeps a fresh head. Same as ``backbone_kwargs:
            {pretrained: TAG}``.
        optimizer: ``params -> Optimizer``.
        lr_scheduler: ``optimizer -> LRScheduler``; ``total_steps`` is filled from the trainer when unset.
        lr_scheduler_interval: Step the scheduler every ``"step"`` or ``"epoch"``.
        compile, channels_last, activation_checkpointing: See :class:`~zoo.tasks.ZooTask`.

    Shapes:
        ``forward``: ``(B, C, H, W)`` noisy images, ``(B,)`` timesteps, optional ``(B,)`` labels -> like images.
    """

    registry_task = "diffusion"
    default_monitor = ("val/loss", "min")

    def __init__(
        self,
        backbone: str | nn.Module = "unet_small",
        image_size: int | None = None,
        in_chans: int | None = None,
        num_classes: int | None = None,
        conditional: bool = False,
        class_dropout: float = 0.1,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        num_train_timesteps: int = 1000,
        beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear",
        prediction_type: Literal["epsilon", "v_prediction"] = "epsilon",
        sampler: Literal["ddpm", "ddim"] = "ddim",
        sample_steps: int = 50,
        guidance_scale: float = 1.0,
        sample_every_n_epochs: int = 1,
        num_sample_images: int = 16,
        fid_num_images: int = 0,
        fid_features: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        pretrained: bool | str | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: CompileOption = False,
        channels_last: bool = False,
        activation_checkpointing: bool = False,
    ) -> None:
        if not 0 <= class_dropout < 1:
            raise ConfigError(f"class_dropout must be a probability below 1, got {class_dropout}")
        if conditional and not num_classes:
            raise ConfigError("a conditional diffusion model needs num_classes (linked from the data module)")
        super().__init__(
            backbone,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_scheduler_interval=lr_scheduler_interval,
            compile=compile,
            activation_checkpointing=activation_checkpointing,
            channels_last=channels_last,
        )
        wanted_classes = num_classes if conditional else None
        self.backbone = self.resolve_backbone(
            backbone,
            backbone_kwargs,
            image_size=image_size,
            in_channels=in_chans,
            num_classes=wanted_classes,
            pretrained=pretrained,
        )
        if isinstance(backbone, nn.Module):
            purpose = "a denoiser"
            backbone_attribute(backbone, "image_size", image_size, purpose)
            backbone_attribute(backbone, "in_channels", in_chans, purpose)
            backbone_attribute(backbone, "num_classes", wanted_classes, purpose, optional=True)
        self.image_size: int = int(self.backbone.image_size)
        self.in_chans: int = int(self.backbone.in_channels)
        self.num_classes = num_classes if conditional else None
        self.conditional = conditional
        self.class_dropout = class_dropout
        if (mean is None) != (std is None):
            raise ConfigError("give both mean and std of the data's normalisation, or neither")
        # x in [-1, 1] = normalised * scale + shift, per channel
        scale = torch.ones(self.in_chans) if std is None else 2 * torch.as_tensor(std, dtype=torch.float32)
        shift = torch.zeros(self.in_chans) if mean is None else 2 * torch.as_tensor(mean, dtype=torch.float32) - 1
        if scale.shape != (self.in_chans,) or shift.shape != (self.in_chans,):
            raise ConfigError(f"mean and std need {self.in_chans} values each, got {mean} and {std}")
        self.register_buffer("_to_unit_scale", scale.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_to_unit_shift", shift.view(1, -1, 1, 1), persistent=False)
        self.data_mean, self.data_std = _tuple(mean), _tuple(std)
        self.noise_scheduler = make_training_scheduler(num_train_timesteps, beta_schedule, prediction_type)
        self.sampler = sampler
        self.sample_steps = sample_steps
        make_sampling_scheduler(self.noise_scheduler, sampler, sample_steps)  # fail now on a bad pair, not mid-run
        self.guidance_scale = guidance_scale
        self.sample_every_n_epochs = sample_every_n_epochs
        self.num_sample_images = num_sample_images
        self.fid_num_images = fid_num_images
        self.fid_features = fid_features

    @override
    def configure_callbacks(self) -> list[L.Callback]:
        """The sample grid and the test-time FID this task's arguments ask for."""
        callbacks: list[L.Callback] = []
        if self.sample_every_n_epochs > 0 and self.num_sample_images > 0:
            callbacks.append(DiffusionSampleGrid(self.sample_every_n_epochs, self.num_sample_images))
        if self.fid_num_images > 0:
            callbacks.append(DiffusionFID(self.fid_num_images, self.fid_features))
        return callbacks

    @override
    def forward(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, class_labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The denoiser's prediction (noise or velocity) for ``noisy`` images at ``timesteps``."""
        if self.channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        return self.backbone(noisy, timesteps, class_labels)

    # Training ----------------------------------------------------------------------------------------------

    def _images_and_labels(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        if images.ndim != 4 or images.shape[1:] != (self.in_chans, self.image_size, self.image_size):
            raise DataError(
                f"DiffusionModel: images of shape {tuple(images.shape)}, but {self.backbone_name!r} expects "
                f"(B, {self.in_chans}, {self.image_size}, {self.image_size})"
            )
        labels = None
        if self.conditional:
            if not isinstance(batch, list | tuple) or len(batch) < 2:
                raise DataError("a conditional diffusion model needs (images, labels) batches")
            labels = batch[1]
            if self.check_now(labels, batch_idx):
                check_class_labels(labels, self.num_classes or 0)
        return images.float() * self._to_unit_scale + self._to_unit_shift, labels

    def _loss(self, x0: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        batch = x0.shape[0]
        steps = self.noise_scheduler.config.num_train_timesteps
        if generator is None:
            noise = torch.randn_like(x0)
            timesteps = torch.randint(0, steps, (batch,), device=x0.device)
        else:
            noise = torch.randn(x0.shape, generator=generator).to(x0.device)
            timesteps = torch.randint(0, steps, (batch,), generator=generator).to(x0.device)
        noisy = self.noise_scheduler.add_noise(x0, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(x0, noise, timesteps)
        else:
            target = noise
        return F.mse_loss(self(noisy, timesteps, labels).float(), target)

    @override
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x0, labels = self._images_and_labels(batch, batch_idx)
        if labels is not None and self.class_dropout > 0:
            dropped = torch.rand(labels.shape, device=labels.device) < self.class_dropout
            labels = torch.where(dropped, torch.full_like(labels, self.backbone.null_class), labels)
        loss = self._loss(x0, labels, None)
        self.log_training_loss(loss)
        return loss

    def _eval_loss(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        x0, labels = self._images_and_labels(batch, batch_idx)
        generator = torch.Generator().manual_seed(batch_idx + 1_000_003 * self.global_rank)
        return x0, self._loss(x0, labels, generator)

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        _, loss = self._eval_loss(batch, batch_idx)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)

    @override
    def test_step(self, batch: Any, batch_idx: int) -> None:
        _, loss = self._eval_loss(batch, batch_idx)
        self.log("test/loss", loss, sync_dist=True)

    @override
    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """One generated image per image of the batch (of its class, when conditional), in ``[0, 1]``.

        The seed is the batch index, so a prediction run is reproducible. Shape: that of the batch's images.
        """
        images = batch[0] if isinstance(batch, list | tuple) else batch
        labels = batch[1] if self.conditional and isinstance(batch, list | tuple) and len(batch) > 1 else None
        return self.sample(images.shape[0], seed=batch_idx, class_labels=labels)

    def images_in_unit_range(self, batch: Any) -> torch.Tensor:
        """The batch's images with the data's normalisation undone: ``(B, C, H, W)`` in ``[0, 1]`` (for the FID)."""
        x0, _ = self._images_and_labels(batch, batch_idx=1)
        return ((x0 + 1) / 2).clamp(0, 1)

    # Sampling ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        num_images: int,
        seed: int = 0,
        sampler: Literal["ddpm", "ddim"] | None = None,
        steps: int | None = None,
        class_labels: Sequence[int] | torch.Tensor | None = None,
        guidance_scale: float | None = None,
        eta: float = 0.0,
        batch_size: int = 256,
    ) -> torch.Tensor:
        """Generate images with the weights the module holds (EMA ones when loaded from a checkpoint).

        Args:
            num_images: How many images.
            seed: Seed of the noise; the same seed, sampler and steps give the same images.
            sampler: ``"ddpm"`` or ``"ddim"``; defaults to the task's.
            steps: Sampling steps; defaults to the task's ``sample_steps``.
            class_labels: ``num_images`` classes for a conditional model; ``None`` samples unconditionally
                (a conditional model then cycles through the classes).
            guidance_scale: Classifier-free guidance; defaults to the task's.
            eta: DDIM stochasticity.
            batch_size: Images per forward pass.

        Returns:
            ``(num_images, C, H, W)`` float32 images in ``[0, 1]`` on the module's device.

        Raises:
            ValueError: For more steps than training timesteps, labels out of range or of the wrong count,
                or labels given to an unconditional model.
        """
        steps = self.sample_steps if steps is None else steps
        scheduler = make_sampling_scheduler(self.noise_scheduler, sampler or self.sampler, steps)
        labels = self._sampling_labels(num_images, class_labels)
        generator = torch.Generator().manual_seed(seed)
        was_training = self.training
        self.eval()
        try:
            chunks = []
            for start in range(0, num_images, batch_size):
                count = min(batch_size, num_images - start)
                chunk_labels = None if labels is None else labels[start : start + count]
                chunks.append(
                    sample_images(
                        self.backbone,
                        scheduler,
                        (count, self.in_chans, self.image_size, self.image_size),
                        generator,
                        chunk_labels,
                        self.guidance_scale if guidance_scale is None else guidance_scale,
                        eta,
                    )
                )
        finally:
            self.train(was_training)
        return (torch.cat(chunks) + 1) / 2

    def _sampling_labels(
        self, num_images: int, class_labels: Sequence[int] | torch.Tensor | None
    ) -> torch.Tensor | None:
        if not self.conditional:
            if class_labels is not None:
                raise ConfigError("class labels were given, but this diffusion model is unconditional")
            return None
        assert self.num_classes is not None
        if class_labels is None:
            labels = torch.arange(num_images) % self.num_classes
        else:
            labels = torch.as_tensor(class_labels, dtype=torch.long).flatten()
            if labels.numel() == 1:
                labels = labels.expand(num_images)
            if labels.numel() != num_images:
                raise ConfigError(f"{labels.numel()} class labels for {num_images} images; give one, or one per image")
        check_class_labels(labels, self.num_classes)
        return labels.to(self.device)

    @override
    def flops_inputs(self, batch: Any) -> tuple[torch.Tensor | None, ...]:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        size = images.shape[0]
        labels = torch.zeros(size, dtype=torch.long) if self.conditional else None
        return torch.empty(images.shape), torch.zeros(size, dtype=torch.long), labels

    # Inference -----------------------------------------------------------------------------------------------

    @override
    def inference_signature(self) -> InferenceSignature:
        channels, side = self.in_chans, self.image_size
        steps = int(self.noise_scheduler.config.num_train_timesteps)
        inputs = [
            TensorSpec("noisy_images", ("batch", channels, side, side), "float32", "images in [-1, 1] with noise"),
            TensorSpec("timesteps", ("batch",), "int64", f"noise level, in [0, {steps})"),
        ]
        if self.conditional:
            null = f"{self.num_classes} is no class" if self.num_classes is not None else ""
            inputs.append(TensorSpec("class_labels", ("batch",), "int64", f"class of each image; {null}"))
        kind = self.noise_scheduler.config.prediction_type
        mean, std = self.data_facts.mean or self.data_mean, self.data_facts.std or self.data_std
        return InferenceSignature(
            task=self.registry_task,
            inputs=tuple(inputs),
            outputs=(TensorSpec("prediction", ("batch", channels, side, side), "float32", f"predicted {kind}"),),
            preprocessing=NoiseInput(side, channels, json_ready(dict(self.noise_scheduler.config)), mean, std),
            labels=self.labels() if self.conditional else None,
            example_sizes={"batch": 2},
            check_sizes=({"batch": 1}, {"batch": 3}),
            limits={"batch": 63},
            limits_reason=(
                "diffusers' Upsample2D calls .contiguous() when the batch is 64 or more; torch.export must pick one "
                "side of that branch. Sample in batches of up to 63 with the ExportedProgram (ONNX and TorchScript "
                "take any batch)."
            ),
        )

    @override
    def inference_module(self) -> nn.Module:
        return (_ConditionalDenoiser if self.conditional else _UnconditionalDenoiser)(self.backbone)

    @override
    def example_inputs(self, sizes: Mapping[str, int], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        batch, steps = sizes["batch"], int(self.noise_scheduler.config.num_train_timesteps)
        images = torch.randn(batch, self.in_chans, self.image_size, self.image_size, generator=generator)
        timesteps = torch.randint(0, steps, (batch,), generator=generator)
        if not self.conditional:
            return images, timesteps
        return images, timesteps, torch.randint(0, (self.num_classes or 0) + 1, (batch,), generator=generator)


class _UnconditionalDenoiser(BackboneCall):
    """The denoiser with the fixed argument list ``(noisy_images, timesteps)`` that export needs."""

    def forward(self, noisy_images: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.backbone(noisy_images, timesteps)


class _ConditionalDenoiser(BackboneCall):
    """The denoiser with the fixed argument list ``(noisy_images, timesteps, class_labels)``."""

    def forward(self, noisy_images: torch.Tensor, timesteps: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:
        return self.backbone(noisy_images, timesteps, class_labels)


def _tuple(values: Sequence[float] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)
