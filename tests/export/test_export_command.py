"""`zoo fit` -> `zoo export` -> `export.load(...).predict(...)`, end to end with the real CLI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from export import load
from zoo.cli import main as zoo_main
from zoo.lightning_cli import ZooLightningCLI

REPO = Path(__file__).resolve().parents[2]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def quickstart_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    args = ["fit", "--config", str(REPO / "recipes/quickstart.yaml"), "--trainer.max_steps", "3",
            "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0"]  # fmt: skip
    here = os.getcwd()
    os.chdir(folder)  # runs/ goes under the test's folder
    try:
        ZooLightningCLI(args=args)
    finally:
        os.chdir(here)
    return next((folder / "runs").glob("**/checkpoints/last.ckpt"))


def test_zoo_export_writes_verified_artifacts_with_their_metadata(
    quickstart_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exported"
    zoo_main(["export", "--ckpt_path", str(quickstart_checkpoint), "--out", str(out)])
    printed = capsys.readouterr().out
    assert printed.count(" pass") == 3 and "model card" in printed
    model = load(out / "speedrun_net_tiny.onnx")
    meta = model.metadata
    assert meta["labels"] == CIFAR10_CLASSES
    assert meta["preprocessing"]["image_size"] == 32 and len(meta["preprocessing"]["mean"]) == 3
    assert "recipes/quickstart.yaml" in meta["recipe"]["path"] and "speedrun_net_tiny" in meta["recipe"]["text"]
    assert len(meta["recipe"]["sha256"]) == 64 and "train/loss" in meta["metrics"]
    card = (out / "model_card.md").read_text()
    assert "airplane" in card and "```yaml" in card

    rng = np.random.default_rng(0)
    files = []
    for i, size in enumerate((32, 48)):  # a larger image is resized to the model's 32x32
        files.append(tmp_path / f"image{i}.png")
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(files[-1])
    predictions = model.predict(files, top_k=3)
    assert len(predictions) == 2 and all(len(p) == 3 for p in predictions)
    assert all(label in CIFAR10_CLASSES and 0 <= p <= 1 for row in predictions for label, p in row)
    for suffix in (".torchscript.pt", ".pt2"):  # the same answer from every format
        other = load(out / f"speedrun_net_tiny{suffix}").predict(files, top_k=3)
        assert [[label for label, _ in row] for row in other] == [[label for label, _ in row] for row in predictions]


def test_zoo_export_rejects_bad_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        zoo_main(["export", "--ckpt_path", str(tmp_path / "none.ckpt"), "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "none.ckpt does not exist" in capsys.readouterr().err
    torch.save({"state_dict": {}}, tmp_path / "x.ckpt")
    with pytest.raises(SystemExit):
        zoo_main(["export", "--ckpt_path", str(tmp_path / "x.ckpt"), "--out", str(tmp_path), "--format", "tflite"])
    assert "unknown formats ['tflite']" in capsys.readouterr().err
