"""``zoo quantize``: int8 artifacts from real checkpoints, judged by their accuracy or perplexity against fp32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import export
from export import calibration as calibration_inputs
from export.api import export_checkpoint
from export.quantize import quantize_checkpoint
from zoo.cli import main
from zoo.errors import ConfigError, UsageError
from zoo.tasks import DiffusionModel, NodeClassifier

# Quality on 4 validation batches of 128 images (twice the training batch): enough to see a broken artifact.
FAST = ["--limit_batches", "4", "--calibration_batches", "4", "--", "--data.init_args.batch_size", "64",
        "--data.init_args.num_workers", "0"]  # fmt: skip
DATA = ["--data.init_args.batch_size", "64", "--data.init_args.num_workers", "0"]


def test_static_int8_is_smaller_runs_in_onnxruntime_and_agrees_with_fp32(
    trained_cnn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["quantize", "--ckpt_path", str(trained_cnn), "--out", str(tmp_path / "int8"), *FAST])
    assert "speedrun_net_tiny.int8.onnx: pass" in capsys.readouterr().out
    fp32 = export_checkpoint(trained_cnn, tmp_path / "fp32", ["onnx"], verify=False)
    artifact = tmp_path / "int8" / "speedrun_net_tiny.int8.onnx"
    assert artifact.stat().st_size < 0.4 * (tmp_path / "fp32" / "speedrun_net_tiny.onnx").stat().st_size
    model = export.load(artifact)  # weights checked against their recorded CRC-32s on the way
    compression, quality = model.metadata["compression"], model.metadata["quality"]
    assert compression["method"] == "static" and compression["format"] == "QDQ" and compression["per_channel"]
    calibration = compression["calibration"]
    assert calibration["batches"] == 4 and calibration["samples"] == 256 and len(calibration["fingerprint"]) == 16
    assert quality["metric"] == "accuracy" and quality["samples"] == 512 and quality["passed"]
    assert quality["agreement"] >= 90 and abs(quality["change"]) <= 1.0
    assert quality["reference"] > 20  # the fixture's network has learned something: agreement means something
    assert model.metadata["status"] == "pass" and model.metadata["labels"] == fp32.metadata["labels"]
    images = torch.rand(3, 3, 32, 32)
    assert model(images).shape == (3, 10) and len(model.predict([images[0].permute(1, 2, 0).mul(255).byte().numpy()]))
    card = (tmp_path / "int8" / "model_card.md").read_text()
    assert "## Quantization" in card and calibration["fingerprint"] in card


def test_a_broken_calibration_fails_the_accuracy_gate_and_the_artifact_is_kept_marked(
    trained_cnn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    constant = [(torch.full((64, 3, 32, 32), 0.5),)]  # every activation range collapses to one value
    report = quantize_checkpoint(trained_cnn, tmp_path / "api", calibration=constant, data_overrides=DATA,
                                 limit_batches=4)  # fmt: skip
    assert not report.ok and report.quality.change > 1.0 and report.artifact.is_file()
    assert export.load(report.artifact).metadata["status"].startswith("failed: accuracy fp32")
    assert report.metadata["compression"]["calibration"]["source"] == "given"
    # The command line: calibration data that went wrong the same way, on one batch, exits 1 naming the drop.
    monkeypatch.setattr(calibration_inputs, "capture_calibration_inputs", lambda *args, **kwargs: constant)
    with pytest.raises(SystemExit) as exit_info:
        main(["quantize", "--ckpt_path", str(trained_cnn), "--out", str(tmp_path / "cli"), *FAST])
    assert exit_info.value.code == 1
    printed = capsys.readouterr().out
    assert "failed: accuracy fp32" in printed and "a drop of" in printed and "(limit 1)" in printed


def test_dynamic_int8_gpt_keeps_its_perplexity_and_torchao_runs_it_too(trained_gpt_nano: Path, tmp_path: Path) -> None:
    onnx = quantize_checkpoint(trained_gpt_nano, tmp_path / "ort", limit_batches=4)
    assert onnx.metadata["compression"]["method"] == "dynamic" and "MatMulInteger" in str(onnx.metadata["compression"])
    assert onnx.quality.metric == "perplexity" and onnx.ok
    assert abs(onnx.quality.change) < 2.0  # percent: int8 linear layers barely move a small GPT's perplexity
    text = export.load(onnx.artifact).generate("ROMEO:", max_new_tokens=5, seed=0)
    assert text.startswith("ROMEO:") and len(text) == 11
    ao = quantize_checkpoint(trained_gpt_nano, tmp_path / "ao", backend="torchao", limit_batches=2)
    assert ao.artifact.suffix == ".pt2" and ao.ok and ao.metadata["compression"]["flow"] == "quantize_"
    assert export.load(ao.artifact)(torch.zeros(2, 7, dtype=torch.long)).shape == (2, 7, 65)


def test_zoo_export_quantize_adds_the_int8_artifact_to_the_table_and_the_card(
    trained_cnn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["export", "--ckpt_path", str(trained_cnn), "--out", str(tmp_path), "--format", "onnx", "--quantize", "int8"])
    printed = capsys.readouterr().out
    assert "onnx int8" in printed and printed.count("pass") >= 2
    card = (tmp_path / "model_card.md").read_text()
    assert "`speedrun_net_tiny.onnx`" in card and "`speedrun_net_tiny.int8.onnx`" in card


def test_what_cannot_be_quantized_is_refused_with_what_applies(
    trained_cnn: Path, trained_gpt_nano: Path, tmp_path: Path
) -> None:
    for task in (DiffusionModel("unet_tiny", image_size=16), NodeClassifier("gcn", num_classes=3, in_channels=4)):
        path = tmp_path / f"{type(task).__name__}.ckpt"
        class_path = f"zoo.tasks.{type(task).__name__}"
        torch.save({"state_dict": task.state_dict(), "hyper_parameters": {"_class_path": class_path,
                                                                         **dict(task.hparams)}}, path)  # fmt: skip
        with pytest.raises(UsageError, match=rf"does not apply to a {type(task).__name__}: zoo quantizes image"):
            quantize_checkpoint(path, tmp_path / "out")
    with pytest.raises(UsageError, match="a LanguageModel takes tokens: use --method dynamic"):
        quantize_checkpoint(trained_gpt_nano, tmp_path / "out", method="static")
    with pytest.raises(ConfigError, match="calibration_batches must be at least 1, got 0"):
        quantize_checkpoint(trained_cnn, tmp_path / "out", calibration_batches=0)
    with pytest.raises(SystemExit) as exit_info:
        main(["quantize", "--ckpt_path", str(trained_cnn), "--out", str(tmp_path / "out"), "--exclude", "nope", *FAST])
    assert exit_info.value.code == 2
