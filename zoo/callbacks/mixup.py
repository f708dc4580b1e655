"""Mixup and CutMix for any classification task, through timm's ``Mixup``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from typing_extensions import override

from zoo.errors import ConfigError, IncompatibleError
from zoo.rng import private_rng

__all__ = ["MixupCutmix"]


class MixupCutmix(L.Callback):
    """Mix pairs of training images and their labels (Mixup, Zhang et al. 2018; CutMix, Yun et al. 2019).

    Each training batch is mixed with itself reversed: image ``i`` with image ``B - 1 - i``. With probability
    ``prob`` the batch is mixed at all; then CutMix is chosen with probability ``switch_prob`` (when both
    alphas are positive), else Mixup. The mixing weight ``lam`` is drawn from ``Beta(alpha, alpha)``:

    * Mixup: ``x_i <- lam * x_i + (1 - lam) * x_{B-1-i}``;
    * CutMix: a box covering about ``1 - lam`` of the image is pasted from ``x_{B-1-i}``, and ``lam`` is
      corrected to the box's true share after clipping at the borders.

    The targets become ``lam * y_i + (1 - lam) * y_{B-1-i}`` over one-hot labels smoothed by
    ``label_smoothing``. The mixing itself is timm's ``Mixup`` (batch mode).

    The draws are a function of ``(seed, rank, batch index)`` alone, made on a private copy of NumPy's
    random state, so a run is reproducible, a resumed run mixes the remaining batches exactly as an
    uninterrupted one would, and nothing else's randomness is disturbed.

    Contract with the task (``zoo.tasks.ImageClassifier`` meets it): ``supports_soft_targets = True``, a
    ``num_classes`` attribute, and a ``train_batch_transforms`` list that the task applies to each training
    batch ``(images, labels)`` before its forward pass. The callback appends a transform that returns
    ``(mixed_images, soft_targets, labels)``; the task computes its loss on the soft targets and its metrics on
    the original hard labels. Validation and test batches are never mixed.

    Args:
        mixup_alpha: Beta parameter of Mixup; 0 disables Mixup.
        cutmix_alpha: Beta parameter of CutMix; 0 disables CutMix.
        prob: Probability that a batch is mixed.
        switch_prob: Probability of CutMix rather than Mixup when both are enabled.
        label_smoothing: Smoothing of the mixed targets; ``None`` takes the task's ``label_smoothing`` (the task
            then does not smooth the already smoothed soft targets again).
        stop_epoch: First epoch (0-based) that is no longer mixed, as in DeiT-style recipes that finish on
            clean images; ``None`` mixes every epoch.
        seed: Seed of the mixing draws.
        cutmix_minmax: Optional ``(min, max)`` share of each side for CutMix boxes instead of ``cutmix_alpha``.

    Raises:
        ValueError: For probabilities outside [0, 1] or both alphas 0.
        TypeError: At setup, for a task whose loss cannot take soft targets.
    """

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        label_smoothing: float | None = None,
        stop_epoch: int | None = None,
        seed: int = 0,
        cutmix_minmax: Sequence[float] | None = None,
    ) -> None:
        if mixup_alpha < 0 or cutmix_alpha < 0 or (mixup_alpha == 0 and cutmix_alpha == 0 and cutmix_minmax is None):
            raise ConfigError(f"need mixup_alpha > 0 or cutmix_alpha > 0, got {mixup_alpha} and {cutmix_alpha}")
        for name, value in (("prob", prob), ("switch_prob", switch_prob)):
            if not 0 <= value <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if label_smoothing is not None and not 0 <= label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing
        self.stop_epoch = stop_epoch
        self.seed = seed
        self.cutmix_minmax = tuple(cutmix_minmax) if cutmix_minmax is not None else None
        self.last_lam: float | None = None
        self._mixup: Any = None
        self._trainer: L.Trainer | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if not getattr(pl_module, "supports_soft_targets", False):
            raise IncompatibleError(
                f"MixupCutmix needs a task whose loss accepts soft targets, and {type(pl_module).__name__} does not "
                "declare supports_soft_targets = True"
            )
        transforms = getattr(pl_module, "train_batch_transforms", None)
        if not isinstance(transforms, list):
            raise IncompatibleError(f"MixupCutmix needs {type(pl_module).__name__}.train_batch_transforms (a list)")
        from timm.data import Mixup

        smoothing = self.label_smoothing
        if smoothing is None:
            smoothing = float(getattr(pl_module, "label_smoothing", 0.0))
        self._mixup = Mixup(
            mixup_alpha=self.mixup_alpha,
            cutmix_alpha=self.cutmix_alpha,
            cutmix_minmax=self.cutmix_minmax,
            prob=self.prob,
            switch_prob=self.switch_prob,
            mode="batch",
            label_smoothing=smoothing,
            num_classes=pl_module.num_classes,
        )
        self._trainer = trainer
        if self.mix not in transforms:
            transforms.append(self.mix)

    @override
    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        transforms = getattr(pl_module, "train_batch_transforms", [])
        if self.mix in transforms:
            transforms.remove(self.mix)

    def mix(self, batch: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
        """Mix one training batch.

        Shapes:
            ``(images (B, C, H, W), labels (B,))`` -> ``(mixed (B, C, H, W), soft targets (B, K), labels (B,))``.
        """
        trainer = self._trainer
        assert trainer is not None and self._mixup is not None
        images, labels = batch[0], batch[1]
        if self.stop_epoch is not None and trainer.current_epoch >= self.stop_epoch:
            return batch
        if labels.is_floating_point():
            raise IncompatibleError("MixupCutmix mixes class-index labels (B,), got floating-point targets")
        if len(images) % 2:
            raise ConfigError(f"MixupCutmix needs an even batch size, got {len(images)}; use an even batch_size")
        from timm.data.mixup import mixup_target

        batch_index = trainer.fit_loop.epoch_loop.batch_progress.total.ready
        mixed = images.clone()
        with private_rng(self.seed, trainer.global_rank, batch_index):
            # timm's batch-mode mixing, called directly to keep lam (``Mixup.__call__`` drops it)
            lam = float(self._mixup._mix_batch(mixed))
        self.last_lam = lam
        soft = mixup_target(labels, self._mixup.num_classes, lam, self._mixup.label_smoothing)
        return mixed, soft, labels
