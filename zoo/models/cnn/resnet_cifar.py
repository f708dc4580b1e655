"""ResNets for 32x32 inputs (He et al., 2016, as used on CIFAR by most speed and accuracy baselines).

The ImageNet stem (7x7 stride-2 conv, then a stride-2 max-pool) would shrink a 32x32 image to 8x8 before the
first residual stage. The CIFAR variant keeps full resolution with a single 3x3 stride-1 conv and no pool,
so the four stages run at 32, 16, 8 and 4 pixels.

The network is timm's :class:`timm.models.resnet.ResNet` with that stem swapped in, so it keeps timm's
whole surface (``drop_path_rate``, ``drop_block_rate``, ``forward_features``, ``reset_classifier``,
``group_matcher`` for layer-wise LR decay, feature extraction) rather than a hand-written copy of it.

Shapes:
    input ``(B, in_chans, 32, 32)`` -> features ``(B, 512, 4, 4)`` -> logits ``(B, num_classes)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from zoo.models.cnn.specs import CIFAR_CLASSIFIER
from zoo.registry import register_model

if TYPE_CHECKING:
    from timm.models.resnet import ResNet


def _cifar_resnet(layers: tuple[int, ...], *, in_chans: int = 3, **kwargs: Any) -> ResNet:
    """Build a timm BasicBlock ResNet and replace its stem with a 3x3 stride-1 conv and no max-pool."""
    from timm.models.resnet import BasicBlock, ResNet

    model = ResNet(BasicBlock, layers, in_chans=in_chans, **kwargs)
    stem_width = model.bn1.num_features
    model.conv1 = nn.Conv2d(in_chans, stem_width, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    # The stem no longer downsamples by 4; keep feature_info truthful for features_only users.
    model.feature_info = [{**info, "reduction": max(1, info["reduction"] // 4)} for info in model.feature_info]
    return model


@register_model(**CIFAR_CLASSIFIER, recipe="recipes/cifar10/resnet18.yaml")
def resnet18_cifar(**kwargs: Any) -> ResNet:
    """ResNet-18 with a 3x3 stem for 32x32 images."""
    return _cifar_resnet((2, 2, 2, 2), **kwargs)


@register_model(**CIFAR_CLASSIFIER)
def resnet34_cifar(**kwargs: Any) -> ResNet:
    """ResNet-34 with a 3x3 stem for 32x32 images."""
    return _cifar_resnet((3, 4, 6, 3), **kwargs)
