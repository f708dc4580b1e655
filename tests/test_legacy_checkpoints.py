"""Checkpoints and artifacts written by zoo 0.1 (before the task contract) still load, export and predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from export import export_checkpoint, load
from export.specs import export_spec
from zoo.checkpoints import load_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "legacy"
EXPECTED = json.loads((FIXTURES / "expected_metadata.json").read_text())
NAMES = sorted(EXPECTED)


@pytest.fixture(scope="module")
def expected_outputs() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / "expected_outputs.safetensors")


@pytest.mark.parametrize("name", NAMES)
def test_a_legacy_checkpoint_rebuilds_the_same_network_and_signature(
    name: str, expected_outputs: dict[str, torch.Tensor]
) -> None:
    expected = EXPECTED[name]
    loaded = load_checkpoint(FIXTURES / f"{name}.ckpt")
    assert (loaded.task_class, loaded.weights) == (expected["task_class"], expected["weights"])
    inputs = [expected_outputs[f"{name}.input{i}"] for i in range(len(expected["inputs"]))]
    with torch.no_grad():
        output = loaded.task.inference_module().eval()(*inputs)
    torch.testing.assert_close(output, expected_outputs[f"{name}.output"], rtol=1e-5, atol=1e-6)

    signature = loaded.task.inference_signature()
    assert [spec.to_dict() | {"description": ""} for spec in signature.inputs] == [
        spec | {"description": ""} for spec in expected["inputs"]
    ]
    assert list(signature.labels or []) == list(expected["labels"] or [])
    stored = {k: v for k, v in expected["preprocessing"].items() if k != "output"}
    now = signature.to_dict()["preprocessing"]
    assert {k: now[k] for k in stored} == stored
    assert ("tokenizer" in now) == expected["has_tokenizer"]
    # The example inputs the task makes now are those zoo 0.1 made, size for size.
    remade = export_spec(loaded).make_inputs(signature.check_sizes[0])
    for made, old in zip(remade, inputs, strict=True):
        assert torch.equal(made, old)


def test_a_legacy_language_model_generates_with_its_stored_tokenizer() -> None:
    task = load_checkpoint(FIXTURES / "language_model.ckpt").task
    text = task.generate("ROMEO:", max_new_tokens=8, temperature=0)
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 8


def test_a_legacy_checkpoint_exports_and_verifies(tmp_path: Path) -> None:
    report = export_checkpoint(FIXTURES / "text_classifier.ckpt", tmp_path, formats=["exported_program"])
    assert report.ok, report.table()
    model = load(tmp_path / "bert_tiny.pt2")
    assert model.labels == ["neg", "pos"]
    assert [label for label, _ in model.predict(["I loved it"], top_k=2)[0]] in (["neg", "pos"], ["pos", "neg"])


@pytest.mark.parametrize("name", ["image_classifier", "text_classifier"])
def test_a_legacy_exported_artifact_predicts_from_raw_input(name: str, tmp_path: Path) -> None:
    model = load(FIXTURES / f"{name}.onnx")
    if name == "image_classifier":
        from PIL import Image

        Image.new("RGB", (40, 24), (200, 30, 30)).save(tmp_path / "red.png")
        rows = model.predict([tmp_path / "red.png"], top_k=10)
    else:
        rows = model.predict(["a wonderful film", "awful"], top_k=2)
    # Read from metadata that has no signature: the task kind comes from what the artifact takes.
    assert model.signature.task == name.replace("classifier", "classification")
    for row in rows:  # every class, most likely first, probabilities summing to one
        assert {label for label, _ in row} == set(EXPECTED[name]["labels"])
        assert [p for _, p in row] == sorted((p for _, p in row), reverse=True)
        assert sum(p for _, p in row) == pytest.approx(1, abs=1e-4)
