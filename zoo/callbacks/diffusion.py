"""What a run of a diffusion model shows besides its loss: sample grids while training, the FID at test time.

Both work with any task that can sample (``sample(num_images, seed=...)`` returning ``(N, C, H, W)`` images in
``[0, 1]``) and, for the FID, map a batch to its real images in ``[0, 1]`` (``images_in_unit_range(batch)``);
``zoo.tasks.DiffusionModel`` adds them itself from its ``sample_every_n_epochs``/``num_sample_images`` and
``fid_num_images``/``fid_features`` arguments. Both sample while an evaluation loop runs, so with the ``EMA``
callback they use the averaged weights, as the validation and test losses do.
"""

from __future__ import annotations

from typing import Any, Protocol

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from typing_extensions import override

from zoo.errors import ConfigError

__all__ = ["DiffusionFID", "DiffusionSampleGrid"]


class _Sampler(Protocol):
    """What these callbacks ask of a task: it samples images and maps a batch to its real images."""

    in_chans: int

    def sample(self, num_images: int, seed: int = 0) -> torch.Tensor: ...

    def images_in_unit_range(self, batch: Any) -> torch.Tensor: ...


class DiffusionSampleGrid(L.Callback):
    """Log a grid of samples (the same seed every time) to the logger every ``every_n_epochs`` validations.

    The grid goes to TensorBoard as the image ``samples`` at the current step; loggers without images are
    skipped. Sampling happens on rank zero during the first validation batch, not during the sanity check.

    Args:
        every_n_epochs: Log every n validation epochs; 0 never.
        num_images: Images in the grid (a square-ish layout).
    """

    def __init__(self, every_n_epochs: int = 1, num_images: int = 16) -> None:
        if every_n_epochs < 0 or num_images < 0:
            raise ConfigError(f"every_n_epochs and num_images must be >= 0, got {every_n_epochs} and {num_images}")
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images

    @override
    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        if batch_idx == 0 and self._due(trainer):
            self._log_grid(trainer, pl_module)

    def _due(self, trainer: L.Trainer) -> bool:
        return (
            self.every_n_epochs > 0
            and self.num_images > 0
            and not trainer.sanity_checking
            and (trainer.current_epoch + 1) % self.every_n_epochs == 0
            and trainer.logger is not None
        )

    @rank_zero_only
    def _log_grid(self, trainer: L.Trainer, pl_module: _Sampler) -> None:
        from torchvision.utils import make_grid

        experiment = getattr(trainer.logger, "experiment", None)
        if not hasattr(experiment, "add_image"):
            return
        images = pl_module.sample(self.num_images, seed=0)
        grid = make_grid(images.cpu(), nrow=max(1, int(self.num_images**0.5)))
        experiment.add_image("samples", grid, global_step=trainer.global_step)


class DiffusionFID(L.Callback):
    """Log the Fréchet distance between generated images and the test images as ``test/<features>``.

    The test images feed the real side batch by batch; after the last test batch, ``num_images`` images are
    generated (split over the ranks, each with its own seeds) and the distance is logged: ``test/fid_zoo_classifier``
    on zoo's CIFAR-10 classifier features (not the standard FID) or ``test/fid_inception`` (see
    :func:`zoo.metrics.fid.build_fid`).

    Args:
        num_images: Images to generate.
        features: ``None`` for zoo's classifier, a zoo image-classifier checkpoint, or ``"inception:<path>"``.
    """

    def __init__(self, num_images: int, features: str | None = None) -> None:
        if num_images < 1:
            raise ConfigError(f"num_images must be >= 1, got {num_images}")
        self.num_images = num_images
        self.features = features
        self._metric: Any = None
        self._name = ""
        self._generated = False

    @override
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from zoo.metrics.fid import build_fid

        self._metric, self._name = build_fid(self.features, pl_module.in_chans)
        self._metric.to(pl_module.device)
        self._generated = False

    @override
    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        self._metric.update(pl_module.images_in_unit_range(batch), real=True)
        if batch_idx + 1 == trainer.num_test_batches[dataloader_idx]:
            self._generate(trainer, pl_module)

    def _generate(self, trainer: L.Trainer, pl_module: _Sampler) -> None:
        self._generated = True
        world, rank = trainer.world_size, trainer.global_rank
        share = self.num_images // world + (rank < self.num_images % world)
        for start in range(0, share, 256):
            self._metric.update(pl_module.sample(min(256, share - start), seed=10_000 * rank + start), real=False)

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._generated:  # a loader without a length: the last batch was not recognised
            self._generate(trainer, pl_module)
        pl_module.log(f"test/{self._name}", self._metric.compute().float(), sync_dist=False)
        self._metric = None
