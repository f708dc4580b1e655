"""Frechet distance between real and generated images, on Inception or on a zoo classifier's features.

The standard FID uses Inception-v3 weights that torchmetrics (through torch-fidelity) downloads on first
use. Where that is impossible, zoo measures the same Frechet distance in the pre-logit feature space of a
CIFAR-10 classifier that zoo trained itself (the weight card ``speedrun_net_tiny.cifar10``, shipped with the
package). The two are different metrics on different scales: zoo logs the second as ``fid_zoo_classifier`` and
never calls it FID.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from typing_extensions import override

from zoo.errors import CheckpointError, ConfigError, MissingExtraError, MissingFileError

if TYPE_CHECKING:
    from zoo.pretrained import WeightCard

__all__ = ["FEATURE_CARD", "ClassifierFeatures", "build_fid", "default_feature_card"]

FEATURE_CARD = "speedrun_net_tiny.cifar10"  # the weight card whose network gives fid_zoo_classifier's features
_CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class ClassifierFeatures(nn.Module):
    """The pre-logit features of an image classifier, as torchmetrics' FID wants a feature extractor.

    Args:
        classifier: A zoo/timm image model (``forward_features`` and ``forward_head(pre_logits=True)``).
        mean: Per-channel mean the classifier was trained with.
        std: Per-channel standard deviation.

    Shapes:
        ``(N, C, H, W)`` float images in ``[0, 1]`` -> ``(N, num_features)`` float32.
    """

    def __init__(self, classifier: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.classifier = classifier.eval().requires_grad_(False)
        self.num_features = int(classifier.num_features)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> ClassifierFeatures:
        """Stay in evaluation mode: BatchNorm must use its running statistics."""
        return super().train(False)

    @torch.no_grad()
    @override
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - self.mean) / self.std
        return self.classifier.forward_head(self.classifier.forward_features(x), pre_logits=True).float()


def default_feature_card() -> WeightCard:
    """The weight card of the shipped feature classifier: model, recipe, accuracy, how it was made."""
    from zoo.pretrained import get_card

    return get_card(FEATURE_CARD)


def build_fid(features: str | None, in_chans: int = 3) -> tuple[Any, str]:
    """A torchmetrics ``FrechetInceptionDistance`` and the name to log it under.

    Args:
        features: ``None`` for zoo's shipped CIFAR-10 classifier; ``"inception:<path>"`` for the standard
            Inception-v3 feature extractor with weights read from ``path`` (torch-fidelity's
            ``pt_inception-2015-12-05`` file); ``"<path>"`` of a zoo image-classification checkpoint; or
            ``"<model name>:<path>"`` for a safetensors file of a registered image model. Classifiers are
            assumed to take CIFAR-10-normalised images.
        in_chans: Channels of the images to compare; the classifiers need 3.

    Returns:
        ``(metric, name)``; the metric takes images in ``[0, 1]`` (``update(images, real=...)``), and ``name`` is
        ``"fid_inception"`` or ``"fid_zoo_classifier"``.

    Raises:
        FileNotFoundError: If a given weights file does not exist.
        ValueError: For images that are not RGB.
        ImportError: For Inception features without torch-fidelity installed.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    if in_chans != 3:
        raise ConfigError(f"FID compares RGB images; these have {in_chans} channel(s)")
    if features is not None and features.startswith("inception:"):
        path = _existing(features.removeprefix("inception:"), "Inception-v3 weights")
        try:
            import torch_fidelity  # noqa: F401
        except ImportError as err:
            raise MissingExtraError("the Inception FID needs torch-fidelity: pip install 'lightning-zoo[fid]'") from err
        metric = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=str(path))
        return metric, "fid_inception"
    return FrechetInceptionDistance(feature=_classifier_features(features), normalize=True), "fid_zoo_classifier"


def _classifier_features(features: str | None) -> ClassifierFeatures:
    from zoo.registry import create_model
    from zoo.weights import load_weights

    if features is None:
        from zoo.pretrained import weights_file

        card = default_feature_card()
        name, path = card.model, weights_file(card)
    elif ":" in features and not Path(features).exists():
        name, _, raw = features.partition(":")
        path = _existing(raw, f"{name} weights")
    else:
        path = _existing(features, "classifier checkpoint")
        name = _checkpoint_backbone(path)
    model = create_model(name)
    load_weights(model, path, new_head=True)  # only the features matter; the head may have other classes
    return ClassifierFeatures(model, _CIFAR10_MEAN, _CIFAR10_STD)


def _checkpoint_backbone(path: Path) -> str:
    from zoo.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters", {})
    backbone = hparams.get("backbone")
    if isinstance(backbone, dict):  # a recipe's parsed config
        backbone = backbone.get("init_args", {}).get("backbone")
    if not isinstance(backbone, str):
        raise CheckpointError(
            f"{path}: not a zoo image-classifier checkpoint (no backbone name in its hyper_parameters)"
        )
    return backbone


def _existing(path: str | os.PathLike[str], what: str) -> Path:
    found = Path(path).expanduser()
    if not found.is_file():
        raise MissingFileError(f"{what} not found: {found}")
    return found
