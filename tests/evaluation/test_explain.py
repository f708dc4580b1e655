"""``zoo explain``: Integrated Gradients' completeness, the overlay, Grad-CAM, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from zoo.errors import DataError, UsageError
from zoo.evaluation.explain import explain_image, run_explain_command


class _Tiny(torch.nn.Module):
    """A small convolutional classifier shaped like a zoo task's inference module."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
            torch.nn.Linear(16, 3),
        )  # fmt: skip

    def inference_module(self) -> torch.nn.Module:
        return self.net


def test_integrated_gradients_attributions_add_up_to_the_score_change() -> None:
    task = _Tiny()
    image = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    result = explain_image(task, image, "integrated_gradients", target=2, steps=200)
    change = float(task.net(image)[0, 2] - task.net(torch.zeros_like(image))[0, 2])
    assert float(result.attribution.sum()) == pytest.approx(change, abs=max(result.delta, 1e-6) * 1.01)
    assert result.relative_delta < 0.05 and result.attribution.shape == (8, 8)
    with pytest.raises(UsageError, match=r"Integrated Gradients did not converge: .* raise --steps"):
        explain_image(task, image * 20, "integrated_gradients", target=2, steps=2, max_delta=1e-6)
    cam = explain_image(task, image, "gradcam", target=2)
    assert cam.attribution.shape == (8, 8) and float(cam.attribution.min()) >= 0  # ReLU'd, upsampled


@pytest.fixture(scope="module")
def checkpoint(trained_cnn: Path) -> str:
    """The session's shared 60-step quickstart checkpoint."""
    return str(trained_cnn)


def test_explain_writes_an_overlay_of_the_inputs_size(checkpoint: str, tmp_path: Path, extract_images) -> None:
    tree = extract_images(tmp_path / "tree", per_class=1, splits=("test",))
    source = tmp_path / "big.png"
    with Image.open(next(tree.glob("test/*/*"))) as small:
        small.convert("RGB").resize((64, 48)).save(source)
    for method in ("integrated_gradients", "saliency", "gradcam"):
        run_explain_command(["--ckpt_path", checkpoint, "--input", str(source), "--method", method,
                             "--out", str(tmp_path / "out")])  # fmt: skip
        with Image.open(tmp_path / "out" / f"big.{method}.png") as overlay:
            assert overlay.size == (64, 48)
        record = json.loads((tmp_path / "out" / f"big.{method}.json").read_text())
        assert len(record["top"]) == 5 and record["top"][0]["label"] in {"airplane", "automobile", "bird", "cat",
                                                                         "deer", "dog", "frog", "horse", "ship",
                                                                         "truck"}  # fmt: skip
    grey = tmp_path / "grey.png"
    Image.new("L", (32, 32), 128).save(grey)
    with pytest.raises(DataError, match=r"grey.png has 1 channel\(s\) \(mode L\) but the model takes 3 \(RGB\)"):
        run_explain_command(["--ckpt_path", checkpoint, "--input", str(grey), "--out", str(tmp_path / "out")])
    with pytest.raises(UsageError, match=r"--text explains text classifiers; .* holds a ImageClassifier"):
        run_explain_command(["--ckpt_path", checkpoint, "--text", "a photo of a cat"])


def test_a_text_classifier_gets_per_token_attributions(trained_text_classifier: Path, tmp_path: Path) -> None:
    checkpoint = str(trained_text_classifier)
    run_explain_command(["--ckpt_path", checkpoint, "--text", "a wonderful film", "--out", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "text0.json").read_text())
    assert record["tokens"][0] == "[CLS]" and "wonderful" in record["tokens"]
    assert len(record["attributions"]) == len(record["tokens"]) and record["relative_delta"] < 0.05
    assert "<span" in (tmp_path / "out" / "text0.html").read_text()


def test_attention_rollout_of_a_vision_transformer() -> None:
    from zoo.evaluation.explain import attention_rollout
    from zoo.tasks import ImageClassifier

    task = ImageClassifier("vit_tiny_cifar", num_classes=10)
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    heat = explain_image(task, image, "attention_rollout").attribution
    assert heat.shape == (32, 32) and float(heat.min()) > 0  # every patch keeps some of the identity path
    assert all(block.attn.fused_attn == task.backbone.blocks[0].attn.fused_attn for block in task.backbone.blocks)
    with pytest.raises(UsageError, match="attention_rollout needs a vision transformer"):
        attention_rollout(_Tiny().net, torch.zeros(1, 3, 8, 8))


def test_an_exported_calibrated_checkpoint_predicts_with_its_temperature(
    checkpoint: str, tmp_path: Path, extract_images
) -> None:
    from export import export_checkpoint, load
    from zoo.evaluation.cli import run_evaluate_command

    run_evaluate_command(["--ckpt_path", checkpoint, "--calibrate", "--limit_batches", "2", "--resamples", "10",
                          "--out", str(tmp_path / "eval")])  # fmt: skip
    report = export_checkpoint(tmp_path / "eval" / "calibrated.ckpt", tmp_path / "exported", formats=("onnx",))
    assert report.ok, report.table()
    model = load(tmp_path / "exported" / report.rows[0]["file"])
    temperature = json.loads((tmp_path / "eval" / "report.json").read_text())["calibration"]["temperature"]
    assert model.temperature == pytest.approx(temperature) and model.metadata["calibration"]["fitted_on"] == "val"
    image = next(extract_images(tmp_path / "tree", per_class=1, splits=("test",)).glob("test/*/*"))
    logits = model(model.preprocess_images([image])).float()
    expected = (logits / temperature).softmax(-1).max().item()
    assert model.predict([image], top_k=1)[0][0][1] == pytest.approx(expected, rel=1e-5)
