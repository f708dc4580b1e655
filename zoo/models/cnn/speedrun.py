"""A small, fast CIFAR network in the spirit of the CIFAR-10 speed runs (airbench, hlb-CIFAR10).

Those runs reach 94% on CIFAR-10 in seconds with a VGG-like stack of three "conv groups", each halving the
resolution with a max-pool placed *between* its two convolutions, GELU activations, a global max-pool and
a bias-free linear head whose logits are scaled down. This module keeps that architecture and drops the
parts that belong to a training script rather than to a model (data-dependent whitening initialisation,
Lookahead, test-time flips), so it trains with any zoo recipe.

Shapes:
    input ``(B, in_chans, H, W)`` -> stem ``(B, stem_width, H, W)`` -> groups halve H and W three times
    -> features ``(B, widths[-1], H/8, W/8)`` -> logits ``(B, num_classes)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from typing_extensions import override

from zoo.models.cnn.specs import CIFAR_CLASSIFIER
from zoo.registry import register_model

__all__ = ["ConvGroup", "SpeedrunNet"]


class ConvGroup(nn.Module):
    """conv3x3 -> max-pool 2 -> norm -> act -> conv3x3 -> norm -> act.

    Pooling right after the first conv lets the second one run at a quarter of the pixels, which is most of
    why these networks are fast.

    Shapes:
        ``(B, in_chs, H, W)`` -> ``(B, out_chs, H // 2, W // 2)``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, kernel_size=3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = norm_layer(out_chs)
        self.act1 = act_layer()
        self.conv2 = nn.Conv2d(out_chs, out_chs, kernel_size=3, padding=1, bias=False)
        self.norm2 = norm_layer(out_chs)
        self.act2 = act_layer()

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.pool(self.conv1(x))))
        return self.act2(self.norm2(self.conv2(x)))


class SpeedrunNet(nn.Module):
    """Stem conv, three :class:`ConvGroup` stages, global max-pool and a scaled linear head.

    Args:
        num_classes: Output classes; 0 removes the head (``forward`` then returns pooled features).
        in_chans: Input channels.
        widths: Output channels of the three groups.
        stem_width: Channels of the 3x3 stem conv.
        act_layer: Activation class.
        norm_layer: Normalisation class, called with the channel count.
        drop_rate: Dropout before the head.
        logit_scale: Multiplier on the logits. The speed runs use 1/9: small initial logits act like a
            temperature and let a high learning rate stay stable.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        widths: Sequence[int] = (64, 256, 256),
        stem_width: int = 32,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        drop_rate: float = 0.0,
        logit_scale: float = 1 / 9,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_features = widths[-1]
        self.logit_scale = logit_scale
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, stem_width, kernel_size=3, padding=1, bias=False),
            norm_layer(stem_width),
            act_layer(),
        )
        channels = [stem_width, *widths]
        self.stages = nn.Sequential(
            *(ConvGroup(c_in, c_out, act_layer, norm_layer) for c_in, c_out in itertools.pairwise(channels))
        )
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = self._make_head(num_classes)

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes, bias=False) if num_classes > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        """The final linear layer (``nn.Identity`` when ``num_classes == 0``)."""
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one for ``num_classes`` outputs."""
        self.num_classes = num_classes
        self.fc = self._make_head(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` -> ``(B, num_features, H // 8, W // 8)``."""
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(B, num_features, h, w)`` -> logits ``(B, num_classes)``, or pooled ``(B, num_features)``."""
        x = self.head_drop(torch.amax(x, dim=(2, 3)))
        return x if pre_logits else self.fc(x) * self.logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` -> ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x))


@register_model(**CIFAR_CLASSIFIER, recipe="recipes/cifar10/speedrun_net.yaml")
def speedrun_net(**kwargs: Any) -> SpeedrunNet:
    """airbench-style CIFAR network, widths 64/256/256."""
    return SpeedrunNet(**kwargs)


@register_model(**CIFAR_CLASSIFIER, recipe="recipes/quickstart.yaml")
def speedrun_net_tiny(**kwargs: Any) -> SpeedrunNet:
    """Quarter-width speed-run network for CPU training, widths 32/64/128."""
    return SpeedrunNet(**{"widths": (32, 64, 128), "stem_width": 16, **kwargs})
