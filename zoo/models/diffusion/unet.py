"""A denoiser around diffusers' ``UNet2DModel`` with a plain tensor interface and input checks.

diffusers' UNet returns a dataclass and accepts any image size or class index, failing deep inside a
convolution or an embedding lookup. The wrapper returns a tensor (what tasks, export and ``torch.compile``
want) and names the problem first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.errors import ConfigError, DataError

__all__ = ["UNetDenoiser"]


class UNetDenoiser(nn.Module):
    """Predicts the noise (or velocity) in a noisy image at a diffusion timestep.

    Optionally class-conditional: with ``num_classes=K`` the UNet embeds ``K + 1`` classes, the last being
    "no class" (:attr:`null_class`). Training with some labels replaced by it lets one network give both
    conditional and unconditional predictions, as classifier-free guidance needs; a conditional model called
    without labels predicts unconditionally.

    Args:
        image_size: Side of the square images.
        in_channels: Image channels; the output has as many.
        num_classes: Classes to condition on, or ``None`` for an unconditional model.
        block_out_channels: Channels per resolution level; each level after the first halves the resolution.
        down_block_types: diffusers block names per level, e.g. ``"DownBlock2D"``, ``"AttnDownBlock2D"``.
        up_block_types: The matching up blocks, from the lowest resolution up.
        layers_per_block: Residual blocks per level.
        dropout: Dropout in the residual blocks.
        norm_num_groups: Groups of the group norms; must divide every level's channels.
        attention_head_dim: Channels per attention head; ``None`` for one head over all channels.

    Shapes:
        - sample: ``(B, in_channels, image_size, image_size)``
        - timesteps: ``(B,)`` or a scalar, integer or float
        - class_labels: ``(B,)`` int64 in ``[0, num_classes]`` (``num_classes`` is "no class"), or ``None``
        - output: like ``sample``

    Labels on the CPU are range-checked on every call; on an accelerator that would cost a host sync per
    step, so the tasks check them once per epoch and before sampling instead.

    Raises:
        ValueError: If ``image_size`` is not divisible by the down-sampling factor, or the block lists disagree.
    """

    def __init__(
        self,
        image_size: int = 32,
        in_channels: int = 3,
        num_classes: int | None = None,
        block_out_channels: Sequence[int] = (64, 128, 256),
        down_block_types: Sequence[str] = ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types: Sequence[str] = ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        layers_per_block: int = 2,
        dropout: float = 0.0,
        norm_num_groups: int = 32,
        attention_head_dim: int | None = None,
    ) -> None:
        super().__init__()
        from diffusers import UNet2DModel

        levels = len(block_out_channels)
        if not len(down_block_types) == len(up_block_types) == levels:
            raise ConfigError(
                f"{levels} levels of block_out_channels need as many down and up blocks, got "
                f"{len(down_block_types)} and {len(up_block_types)}"
            )
        self.downsample_factor = 2 ** (levels - 1)
        if image_size % self.downsample_factor:
            raise ConfigError(
                f"image_size {image_size} is not divisible by the UNet's down-sampling factor {self.downsample_factor} "
                f"({levels} resolution levels)"
            )
        if num_classes is not None and num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1 or None (unconditional), got {num_classes}")
        self.image_size = image_size
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.unet = UNet2DModel(
            sample_size=image_size,
            in_channels=in_channels,
            out_channels=in_channels,
            block_out_channels=tuple(block_out_channels),
            down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types),
            layers_per_block=layers_per_block,
            dropout=dropout,
            norm_num_groups=norm_num_groups,
            attention_head_dim=attention_head_dim,
            num_class_embeds=None if num_classes is None else num_classes + 1,
        )

    @property
    def null_class(self) -> int | None:
        """The label meaning "no class" for a conditional model; ``None`` for an unconditional one."""
        return self.num_classes

    def forward(
        self, sample: torch.Tensor, timesteps: torch.Tensor, class_labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict the model target (noise or velocity) for ``sample`` at ``timesteps``."""
        if sample.ndim != 4 or sample.shape[1] != self.in_channels:
            raise DataError(f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(sample.shape)}")
        height, width = sample.shape[-2:]
        if height % self.downsample_factor or width % self.downsample_factor:
            raise ConfigError(
                f"image size {height}x{width} is not divisible by the UNet's down-sampling factor "
                f"{self.downsample_factor}"
            )
        if self.num_classes is None:
            if class_labels is not None:
                raise ConfigError("class labels were given to an unconditional model (built with num_classes=None)")
        else:
            if class_labels is None:
                class_labels = torch.full((sample.shape[0],), self.num_classes, device=sample.device)
            elif class_labels.device.type == "cpu":  # on an accelerator the check would sync every step
                check_class_labels(class_labels, self.num_classes, allow_null=True)
        return self.unet(sample, timesteps, class_labels=class_labels, return_dict=False)[0]


def check_class_labels(labels: torch.Tensor, num_classes: int, allow_null: bool = False) -> None:
    """Raise a ``ValueError`` naming the first label outside ``[0, num_classes)`` (or ``num_classes`` itself).

    Out-of-range indices would otherwise fail inside an embedding lookup, on a GPU as an opaque device assert.
    """
    top = num_classes + 1 if allow_null else num_classes
    bad = (labels < 0) | (labels >= top)
    if torch.compiler.is_compiling() or not bool(bad.any()):
        return
    value = int(labels[bad][0])
    allowed = f"0..{num_classes - 1}" + (f" (or {num_classes} for no class)" if allow_null else "")
    raise DataError(f"class label {value} is out of range for a model conditioned on {num_classes} classes: {allowed}")
