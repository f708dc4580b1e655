"""Vision transformers sized for 32x32 inputs (ViT, Dosovitskiy et al. 2021; DeiT training, Touvron et al. 2021).

ImageNet ViTs cut a 224x224 image into 16x16 patches, 196 tokens. On a 32x32 image the same patches would
leave 4 tokens, so these models use 4x4 patches: 64 patch tokens plus the class token. The network is timm's
:class:`timm.models.vision_transformer.VisionTransformer` (pre-norm blocks, learned position embeddings,
class-token pooling), so it keeps timm's surface: ``drop_path_rate``, ``forward_features``,
``reset_classifier``, ``group_matcher`` for layer-wise LR decay, ``no_weight_decay`` for the position
embedding and class token. Widths and depths follow DeiT-Tiny and DeiT-Small.

Shapes:
    input ``(B, in_chans, 32, 32)`` -> tokens ``(B, 65, embed_dim)`` -> logits ``(B, num_classes)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.registry import InputSpec, register_model

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer

_CIFAR_VIT = {
    "family": "transformer",
    "tasks": ("image_classification",),
    "input_spec": InputSpec((3, 32, 32)),
    "defaults": {"num_classes": 10},
}


def _vit_cifar(embed_dim: int, depth: int, num_heads: int, **kwargs: Any) -> VisionTransformer:
    from timm.models.vision_transformer import VisionTransformer

    settings = {"img_size": 32, "patch_size": 4, "embed_dim": embed_dim, "depth": depth, "num_heads": num_heads}
    return VisionTransformer(**{**settings, **kwargs})


@register_model(**_CIFAR_VIT, recipe="recipes/cifar10/vit_tiny.yaml")
def vit_tiny_cifar(**kwargs: Any) -> VisionTransformer:
    """ViT-Tiny (DeiT-Ti widths: 192 wide, 12 blocks, 3 heads) with 4x4 patches for 32x32 images."""
    return _vit_cifar(192, 12, 3, **kwargs)


@register_model(**_CIFAR_VIT)
def vit_small_cifar(**kwargs: Any) -> VisionTransformer:
    """ViT-Small (DeiT-S widths: 384 wide, 12 blocks, 6 heads) with 4x4 patches for 32x32 images."""
    return _vit_cifar(384, 12, 6, **kwargs)
