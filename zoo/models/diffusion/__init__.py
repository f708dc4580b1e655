"""Diffusion family: UNet denoisers from diffusers, sized for small images.

This module registers the models and imports only torch; diffusers is imported when one is built
(:mod:`zoo.models.diffusion.unet`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.registry import InputSpec, register_model

if TYPE_CHECKING:
    from torch import nn

_UNET = {
    "family": "diffusion",
    "tasks": ("diffusion",),
    "input_spec": InputSpec((3, 32, 32)),  # the noisy image; the timestep (and class) come beside it
    "defaults": {"image_size": 32, "in_channels": 3, "num_classes": None},
}


def _build(**kwargs: Any) -> nn.Module:
    from zoo.models.diffusion.unet import UNetDenoiser

    return UNetDenoiser(**kwargs)


@register_model(**_UNET)
def ddpm_unet_cifar(**kwargs: Any) -> nn.Module:
    """The DDPM paper's CIFAR-10 UNet (Ho et al.): 128-256-256-256 channels, attention at 16x16, 35.7M."""
    arch = {
        "block_out_channels": (128, 256, 256, 256),
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        "layers_per_block": 2,
        "dropout": 0.1,
    }
    return _build(**{**arch, **kwargs})


@register_model(**_UNET, recipe="recipes/cifar10/ddpm.yaml")
def unet_small(**kwargs: Any) -> nn.Module:
    """A small 32x32 UNet: 64-128-256 channels, attention at 16x16 and 8x8, 2 blocks per level."""
    arch = {
        "block_out_channels": (64, 128, 256),
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        "layers_per_block": 2,
        "dropout": 0.1,
    }
    return _build(**{**arch, **kwargs})


@register_model(**_UNET, recipe="recipes/shapes/ddpm_tiny.yaml")
def unet_tiny(**kwargs: Any) -> nn.Module:
    """A UNet that trains on a CPU in minutes: 32-64-64 channels, attention at 8x8, 1 block per level."""
    arch = {
        "block_out_channels": (32, 64, 64),
        "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "layers_per_block": 1,
        "norm_num_groups": 8,
    }
    return _build(**{**arch, **kwargs})
