"""Activation checkpointing through each family's own switch, and torch.compile's modes and options."""

from __future__ import annotations

import pytest
import torch

from zoo.errors import ConfigError
from zoo.tasks import DiffusionModel, ImageClassifier, LanguageModel, TextClassifier


def _image_task(flag: bool) -> ImageClassifier:
    return ImageClassifier("vit_tiny_cifar", num_classes=10, activation_checkpointing=flag)


CASES = {
    "timm ResNet": (lambda flag: ImageClassifier("resnet18_cifar", activation_checkpointing=flag),
                    lambda: (torch.randn(2, 3, 32, 32),)),
    "zoo ViT (timm)": (_image_task, lambda: (torch.randn(2, 3, 32, 32),)),
    "zoo GPT": (lambda flag: LanguageModel("gpt_nano", vocab_size=65, block_size=16, activation_checkpointing=flag),
                lambda: (torch.randint(0, 65, (2, 16)),)),
    "transformers encoder": (
        lambda flag: TextClassifier("bert_tiny", num_classes=2, vocab_size=100, activation_checkpointing=flag),
        lambda: (torch.randint(0, 100, (2, 12)), torch.ones(2, 12, dtype=torch.long)),
    ),
    "diffusers UNet": (
        lambda flag: DiffusionModel("unet_tiny", image_size=16, activation_checkpointing=flag),
        lambda: (torch.randn(2, 3, 16, 16), torch.tensor([3, 500])),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_checkpointing_gives_the_same_loss_and_gradients(case: str) -> None:
    build, make_inputs = CASES[case]
    plain, checkpointed = build(False), build(True)
    checkpointed.load_state_dict(plain.state_dict())
    assert _checkpointing(checkpointed.backbone) and not _checkpointing(plain.backbone)
    inputs = make_inputs()
    results = []
    for task in (plain, checkpointed):
        task.train()
        torch.manual_seed(0)  # the same dropout masks; checkpointing replays the RNG state when it recomputes
        out = task.backbone(*inputs)
        loss = out.float().square().mean()
        loss.backward()
        results.append(
            (loss.detach(), {n: p.grad.clone() for n, p in task.backbone.named_parameters() if p.grad is not None})
        )
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.allclose(loss_a, loss_b, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6), name


def test_a_backbone_without_a_switch_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"activation_checkpointing: 'speedrun_net_tiny' has no checkpointing switch"):
        ImageClassifier("speedrun_net_tiny", activation_checkpointing=True)


def test_compile_takes_modes_and_torch_compile_arguments(trainer_factory) -> None:
    assert ImageClassifier("speedrun_net_tiny", compile="max-autotune").compile_options == {"mode": "max-autotune"}
    assert ImageClassifier("speedrun_net_tiny", compile=True).compile_options == {}
    with pytest.raises(ConfigError, match="unknown mode 'fast'; one of true, default, reduce-overhead"):
        ImageClassifier("speedrun_net_tiny", compile="fast")
    with pytest.raises(ConfigError, match=r"torch.compile takes no \['dinamic'\]"):
        ImageClassifier("speedrun_net_tiny", compile={"dinamic": True})
    task = ImageClassifier("speedrun_net_tiny", compile={"backend": "eager", "dynamic": False})
    images = torch.randn(16, 3, 32, 32)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, torch.randint(0, 10, (16,))), batch_size=8
    )
    trainer_factory(max_steps=2).fit(task, data)
    assert task.backbone._compiled_call_impl is not None  # compiled in place, with the options given


def _checkpointing(backbone: torch.nn.Module) -> bool:
    """Whether the library's own flag is on in some module (timm and zoo: grad_checkpointing; HF, diffusers:
    is_gradient_checkpointing)."""
    return any(
        getattr(m, "grad_checkpointing", False) is True or getattr(m, "is_gradient_checkpointing", False) is True
        for m in backbone.modules()
    )


def test_recipes_set_both_from_the_command_line(repo, tmp_path, monkeypatch) -> None:
    from zoo.lightning_cli import ZooLightningCLI

    monkeypatch.chdir(tmp_path)
    cli = ZooLightningCLI(
        args=["--config", str(repo / "recipes/shakespeare/gpt_nano.yaml"), "--model.init_args.compile",
              "reduce-overhead", "--model.init_args.activation_checkpointing", "true"],
        run=False,
    )  # fmt: skip
    assert cli.model.compile_options == {"mode": "reduce-overhead"} and cli.model.backbone.grad_checkpointing
    cli = ZooLightningCLI(
        args=["--config", str(repo / "recipes/shakespeare/gpt_nano.yaml"),
              "--model.init_args.compile", "{mode: max-autotune, dynamic: false}"],
        run=False,
    )  # fmt: skip
    assert cli.model.compile_options == {"mode": "max-autotune", "dynamic": False}


def test_a_checkpoint_trained_with_checkpointing_loads_without_it(tmp_path) -> None:
    from zoo.checkpoints import load_checkpoint

    task = LanguageModel("gpt_nano", vocab_size=65, block_size=16, activation_checkpointing=True)
    hparams = {"_class_path": "zoo.tasks.LanguageModel", **dict(task.hparams)}
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": hparams}, tmp_path / "run.ckpt")
    assert not load_checkpoint(tmp_path / "run.ckpt").task.backbone.grad_checkpointing  # for inference and export
