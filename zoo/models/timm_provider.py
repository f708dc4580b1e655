"""Any timm model as ``timm/<name>``, without copying timm's registry into ours.

``create_model("timm/convnext_atto", num_classes=10, in_chans=1, drop_path_rate=0.1)`` forwards every
keyword to :func:`timm.create_model`. Weights are not downloaded unless the caller passes
``pretrained=True``, which uses timm's usual Hugging Face Hub path.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from zoo.registry import InputSpec, ModelEntry, UnknownModelError, suggest

if TYPE_CHECKING:
    from torch import nn

# timm modules whose models are attention-based; every other timm model is filed under "cnn".
_TRANSFORMER_MODULES = (
    "beit", "cait", "coat", "convit", "crossvit", "davit", "deepseek_vit", "deit", "efficientformer",
    "efficientformer_v2", "eva", "gcvit", "gemma4_vit", "hiera", "hieradet_sam2", "levit", "mvitv2",
    "naflexvit", "nest", "pit", "pvt_v2", "qwen3_vit", "swin_transformer", "swin_transformer_v2",
    "swin_transformer_v2_cr", "tiny_vit", "tnt", "twins", "vision_transformer", "vision_transformer_hybrid",
    "vision_transformer_relpos", "vision_transformer_sam", "visformer", "vitamin", "volo", "xcit",
)  # fmt: skip

_ENTRIES: dict[str, ModelEntry] = {}


def entry(name: str) -> ModelEntry:
    """Registry entry for the timm model ``name`` (without the ``timm/`` prefix).

    Raises:
        UnknownModelError: If timm has no such model; the message lists the closest timm names.
    """
    if name not in _ENTRIES:
        import timm
        from timm.models import get_pretrained_cfg, is_model_in_modules

        if not timm.is_model(name):
            raise UnknownModelError(f"unknown timm model {name!r}: {suggest(name, timm.list_models())}")
        cfg = get_pretrained_cfg(name)
        input_size = tuple(cfg.input_size) if cfg is not None else (3, 224, 224)
        _ENTRIES[name] = ModelEntry(
            name=f"timm/{name}",
            family="transformer" if is_model_in_modules(name, _TRANSFORMER_MODULES) else "cnn",
            tasks=("image_classification",),
            builder=partial(_build, name),
            input_spec=InputSpec(input_size),
            description=f"timm's {name}, randomly initialised unless pretrained=True",
        )
    return _ENTRIES[name]


def names(pattern: str = "*") -> list[str]:
    """``timm/``-prefixed names of timm models matching ``pattern``."""
    import timm

    return [f"timm/{n}" for n in timm.list_models(pattern)]


def has(name: str) -> bool:
    """Whether timm knows the model ``name`` (used to suggest ``timm/<name>`` for an unknown zoo name)."""
    import timm

    return timm.is_model(name)


def _build(name: str, **kwargs: Any) -> nn.Module:
    import timm

    return timm.create_model(name, **{"pretrained": False, **kwargs})
