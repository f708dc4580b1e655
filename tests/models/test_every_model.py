"""The contract every registered model keeps; a model added later is covered automatically."""

from __future__ import annotations

import pytest
import torch

import zoo

# Registered models, plus a sample of timm models reached through the "timm/" prefix.
MODELS = [*zoo.list_models(), "timm/resnet18", "timm/convnext_atto"]
TINY_SIDE = 32


def _tiny_input(name: str, batch_size: int = 2) -> torch.Tensor:
    shape = list(zoo.model_info(name).input_spec.shape)
    shape[-2:] = [TINY_SIDE, TINY_SIDE]
    return torch.randn(batch_size, *shape)


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_reaches_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = zoo.create_model(name, num_classes=7)
    logits = model(_tiny_input(name))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    logits.logsumexp(dim=1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", MODELS)
def test_timm_style_surface(name: str) -> None:
    model = zoo.create_model(name, num_classes=7).eval()
    x = _tiny_input(name)
    features = model.forward_features(x)
    pooled = model.forward_head(features, pre_logits=True)
    assert pooled.shape == (2, model.num_features)
    assert torch.allclose(model.forward_head(features), model(x), atol=1e-5)
    model.reset_classifier(3)
    assert model.num_classes == 3
    assert model(x).shape == (2, 3)
    assert model.get_classifier().out_features == 3
