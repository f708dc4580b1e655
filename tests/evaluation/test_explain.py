"""``zoo explain``: Integrated Gradients' completeness, the overlay, Grad-CAM, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from zoo.errors import DataError, UsageError
from zoo.evaluation.explain import explain_image, run_explain_command
from zoo.lightning_cli import ZooLightningCLI


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
def checkpoint(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("explain_runs")
    cli = ZooLightningCLI(args=["fit", "--config", str(repo / "recipes/quickstart.yaml"), "--trainer.max_steps", "10",
                                "--trainer.limit_val_batches", "1", "--test_after_fit", "false",
                                "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
                                "--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0"])  # fmt: skip
    return cli.trainer.checkpoint_callback.last_model_path


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
