"""The contract every registered model keeps; a model added later is covered automatically."""

from __future__ import annotations

import pytest
import torch

import zoo

REGISTERED = zoo.list_models()
# Registered image models, plus a sample of timm models reached through the "timm/" prefix.
IMAGE_MODELS = [n for n in REGISTERED if "image_classification" in zoo.model_info(n).tasks]
IMAGE_MODELS += ["timm/resnet18", "timm/convnext_atto"]
LANGUAGE_MODELS = [n for n in REGISTERED if "language_modeling" in zoo.model_info(n).tasks]
TEXT_MODELS = [n for n in REGISTERED if "text_classification" in zoo.model_info(n).tasks]
NODE_MODELS = [n for n in REGISTERED if "node_classification" in zoo.model_info(n).tasks]
GRAPH_MODELS = [n for n in REGISTERED if "graph_classification" in zoo.model_info(n).tasks]
DIFFUSION_MODELS = [n for n in REGISTERED if "diffusion" in zoo.model_info(n).tasks]
COVERED_TASKS = {
    "diffusion",
    "image_classification",
    "language_modeling",
    "text_classification",
    "node_classification",
    "graph_classification",
}
TINY_SIDE, TINY_VOCAB, TINY_CONTEXT = 32, 11, 16


def test_every_registered_task_has_a_contract_test_here() -> None:
    tasks = {task for name in REGISTERED for task in zoo.model_info(name).tasks}
    assert tasks <= COVERED_TASKS, f"add contract tests for {tasks - COVERED_TASKS}"


def _tiny_image(name: str, batch_size: int = 2) -> torch.Tensor:
    shape = list(zoo.model_info(name).input_spec.shape)
    shape[-2:] = [TINY_SIDE, TINY_SIDE]
    return torch.randn(batch_size, *shape)


def _assert_every_parameter_learns(model: torch.nn.Module, output: torch.Tensor) -> None:
    assert torch.isfinite(output).all()
    output.logsumexp(dim=-1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_image_model_forward_backward_reaches_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = zoo.create_model(name, num_classes=7)
    logits = model(_tiny_image(name))
    assert logits.shape == (2, 7)
    _assert_every_parameter_learns(model, logits)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_image_model_timm_style_surface(name: str) -> None:
    model = zoo.create_model(name, num_classes=7).eval()
    x = _tiny_image(name)
    features = model.forward_features(x)
    pooled = model.forward_head(features, pre_logits=True)
    assert pooled.shape == (2, model.num_features)
    assert torch.allclose(model.forward_head(features), model(x), atol=1e-5)
    model.reset_classifier(3)
    assert model.num_classes == 3
    assert model(x).shape == (2, 3)
    assert model.get_classifier().out_features == 3


def _tiny_language_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.create_model(name, vocab_size=TINY_VOCAB, block_size=TINY_CONTEXT)


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
def test_language_model_forward_backward_reaches_every_parameter(name: str) -> None:
    model = _tiny_language_model(name)
    tokens = torch.randint(0, TINY_VOCAB, (2, TINY_CONTEXT))
    logits = model(tokens)
    assert logits.shape == (2, TINY_CONTEXT, TINY_VOCAB)  # the vocab_size override is honoured
    _assert_every_parameter_learns(model, logits)


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
def test_language_model_is_causal(name: str) -> None:
    model = _tiny_language_model(name).eval()
    tokens = torch.randint(0, TINY_VOCAB, (1, TINY_CONTEXT))
    changed = tokens.clone()
    changed[0, 9] = (tokens[0, 9] + 1) % TINY_VOCAB
    before, after = model(tokens), model(changed)
    assert torch.allclose(before[:, :9], after[:, :9], atol=1e-6)  # earlier positions never see later tokens
    assert not torch.allclose(before[:, 9:], after[:, 9:])


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
def test_language_model_rejects_a_context_longer_than_its_maximum(name: str) -> None:
    model = _tiny_language_model(name)
    with pytest.raises(
        ValueError, match=f"context of {TINY_CONTEXT + 1} tokens is longer than .*block_size={TINY_CONTEXT}"
    ):
        model(torch.zeros(1, TINY_CONTEXT + 1, dtype=torch.long))


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_text_model_forward_backward_reaches_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    model = zoo.create_model(name, num_classes=7, vocab_size=50)
    tokens = torch.randint(5, 50, (2, TINY_CONTEXT))
    mask = torch.ones_like(tokens)
    mask[1, 10:] = 0  # a padded second sequence
    logits = model(tokens, mask)
    assert logits.shape == (2, 7) and model.num_classes == 7 and model.vocab_size == 50
    _assert_every_parameter_learns(model, logits)
    assert model.get_classifier() is not None and "blocks" in model.group_matcher()


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_text_model_rejects_a_sequence_longer_than_its_maximum(name: str) -> None:
    model = zoo.create_model(name, num_classes=2, vocab_size=50)
    too_long = model.max_length + 1
    with pytest.raises(ValueError, match=f"sequence of {too_long} tokens is longer than the model's maximum"):
        model(torch.ones(1, too_long, dtype=torch.long))


def _tiny_graph(num_nodes: int = 10, num_edges: int = 30, features: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(num_nodes, features, generator=generator)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=generator)
    return x, edge_index


@pytest.mark.parametrize("name", NODE_MODELS)
def test_node_model_forward_backward_and_edge_order_invariance(name: str) -> None:
    torch.manual_seed(0)
    model = zoo.create_model(name, in_channels=5, num_classes=7)
    x, edge_index = _tiny_graph()
    logits = model(x, edge_index)
    assert logits.shape == (10, 7)
    _assert_every_parameter_learns(model, logits)
    model.eval()
    permuted = edge_index[:, torch.randperm(edge_index.shape[1], generator=torch.Generator().manual_seed(1))]
    assert torch.allclose(model(x, edge_index), model(x, permuted), atol=1e-5)  # a set of edges, not a list


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_graph_model_pools_each_graph(name: str) -> None:
    torch.manual_seed(0)
    model = zoo.create_model(name, in_channels=5, num_classes=7)
    x, edge_index = _tiny_graph()
    batch = torch.tensor([0] * 6 + [1] * 4)
    edge_index = edge_index[:, (batch[edge_index[0]] == batch[edge_index[1]])]  # edges stay inside graphs
    logits = model(x, edge_index, batch)
    assert logits.shape == (2, 7)
    _assert_every_parameter_learns(model, logits)
    model.eval()
    alone = model(x[6:], edge_index[:, batch[edge_index[0]] == 1] - 6)
    assert torch.allclose(model(x, edge_index, batch)[1], alone[0], atol=1e-5)  # graphs do not leak into each other


@pytest.mark.parametrize("name", DIFFUSION_MODELS)
def test_diffusion_model_predicts_an_image_and_every_parameter_learns(name: str) -> None:
    torch.manual_seed(0)
    model = zoo.create_model(name, num_classes=4)  # conditional: the class embedding must learn too
    images = _tiny_image(name)
    prediction = model(images, torch.tensor([3, 900]), torch.tensor([0, 4]))  # 4 is "no class"
    assert prediction.shape == images.shape
    _assert_every_parameter_learns(model, prediction)
    unconditional = zoo.create_model(name).eval()
    assert unconditional(images, torch.tensor([3, 900])).shape == images.shape
    with pytest.raises(ValueError, match="class labels were given to an unconditional model"):
        unconditional(images, torch.tensor([3, 900]), torch.tensor([0, 1]))
