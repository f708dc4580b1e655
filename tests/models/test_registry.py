from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from zoo import registry
from zoo.registry import InputSpec, UnknownModelError


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Let a test register models without leaving them behind."""
    registry.list_models()  # load the families first, so they are part of the copy
    copy = dict(registry._REGISTRY)
    monkeypatch.setattr(registry, "_REGISTRY", copy)
    return copy


def test_native_cnns_are_registered_with_their_metadata() -> None:
    names = zoo.list_models(family="cnn")
    assert {"resnet18_cifar", "speedrun_net", "speedrun_net_tiny"} <= set(names)
    assert names == sorted(names)
    info = zoo.model_info("resnet18_cifar")
    assert info.family == "cnn"
    assert info.tasks == ("image_classification",)
    assert info.input_spec == InputSpec((3, 32, 32))
    assert info.recipe == "recipes/cifar10/resnet18.yaml"
    assert info.description


def test_parameter_count_matches_a_real_instance() -> None:
    for name in zoo.list_models():
        model = zoo.create_model(name)
        assert zoo.model_info(name).num_params == sum(p.numel() for p in model.parameters()), name


def test_recipes_named_by_the_registry_exist(repo: Path) -> None:
    for name in zoo.list_models():
        recipe = zoo.model_info(name).recipe
        assert recipe is None or (repo / recipe).is_file(), f"{name}: {recipe} missing"


def test_list_models_filters_by_pattern_and_family() -> None:
    assert zoo.list_models("speedrun*") == ["speedrun_net", "speedrun_net_tiny"]
    assert zoo.list_models(family="gnn") == ["gat", "gcn", "gin", "graph_transformer", "graphsage"]
    assert zoo.list_models(family="diffusion") == ["ddpm_unet_cifar", "unet_small", "unet_tiny"]
    with pytest.raises(ValueError, match="unknown family 'cnns'"):
        zoo.list_models(family="cnns")


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model 'resnet18_cifr'.*did you mean 'resnet18_cifar'"):
        zoo.create_model("resnet18_cifr")


def test_unknown_name_known_to_timm_suggests_the_prefix() -> None:
    with pytest.raises(UnknownModelError, match="did you mean 'timm/resnet50'"):
        zoo.model_info("resnet50")


def test_unknown_timm_name_suggests_timm_names() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown timm model 'convnext_atoo'.*'convnext_atto'"):
        zoo.create_model("timm/convnext_atoo")


def test_unexpected_argument_names_it() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_clases'"):
        zoo.create_model("speedrun_net", num_clases=3)


def test_overrides_reach_the_model() -> None:
    model = zoo.create_model("resnet18_cifar", num_classes=100, in_chans=1, drop_rate=0.3)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 100)
    assert model.drop_rate == 0.3


def test_duplicate_registration_raises(scratch_registry: dict) -> None:
    def resnet18_cifar(**kwargs) -> nn.Module:
        return nn.Linear(2, 2)

    with pytest.raises(ValueError, match="'resnet18_cifar' is already registered"):
        zoo.register_model(resnet18_cifar, family="cnn", tasks=("image_classification",), input_spec=InputSpec((2,)))


def test_user_models_can_be_registered(scratch_registry: dict) -> None:
    @zoo.register_model(
        family="cnn", tasks=("image_classification",), input_spec=InputSpec((4,)), defaults={"num_classes": 3}
    )
    def my_linear(num_classes: int, in_features: int = 4) -> nn.Module:
        """A linear probe."""
        return nn.Linear(in_features, num_classes)

    assert "my_linear" in zoo.list_models()
    assert zoo.model_info("my_linear").description == "A linear probe."
    assert zoo.model_info("my_linear").num_params == 4 * 3 + 3
    assert zoo.create_model("my_linear", num_classes=5).out_features == 5
    with pytest.raises(TypeError, match=r"unexpected argument\(s\) \['depth'\]"):
        zoo.create_model("my_linear", depth=2)


def test_registration_rejects_unknown_family_and_task(scratch_registry: dict) -> None:
    with pytest.raises(ValueError, match="unknown family 'mlp'"):
        zoo.register_model(
            lambda: nn.Identity(), name="x", family="mlp", tasks=("diffusion",), input_spec=InputSpec((1,))
        )
    with pytest.raises(ValueError, match="segmentation"):
        zoo.register_model(
            lambda: nn.Identity(), name="y", family="cnn", tasks=("segmentation",), input_spec=InputSpec((1,))
        )


def test_timm_models_by_name_honour_timm_arguments() -> None:
    model = zoo.create_model("timm/convnext_atto", num_classes=7, in_chans=1, drop_path_rate=0.1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    assert model.stem[0].in_channels == 1
    drop_paths = [m for m in model.modules() if type(m).__name__ == "DropPath"]
    assert drop_paths and max(m.drop_prob for m in drop_paths) == pytest.approx(0.1)


def test_timm_entries_carry_family_and_input_spec() -> None:
    assert zoo.model_info("timm/resnet50").family == "cnn"
    assert zoo.model_info("timm/resnet50").input_spec == InputSpec((3, 224, 224))
    assert zoo.model_info("timm/vit_tiny_patch16_224").family == "transformer"
    listed = zoo.list_models("timm/convnext_att*")
    assert "timm/convnext_atto" in listed and all(n.startswith("timm/convnext_att") for n in listed)
    assert zoo.list_models("timm/convnext_att*", family="transformer") == []


def test_to_dict_is_json_ready() -> None:
    import json

    data = json.loads(json.dumps(zoo.model_info("speedrun_net").to_dict()))
    assert data["name"] == "speedrun_net"
    assert data["input_spec"] == {"shape": [3, 32, 32], "dtype": "float32"}
    assert data["num_params"] > 0
