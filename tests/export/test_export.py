"""Export every exportable registered model to all three formats and verify it; refuse unsafe or damaged input."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

import zoo
from export import export_checkpoint, load_checkpoint, read_metadata
from export.specs import export_spec
from export.verify import verify_artifact
from zoo.checkpoints import LoadedCheckpoint, WeightsMismatchError
from zoo.tasks import (
    DiffusionModel,
    GraphClassifier,
    ImageClassifier,
    LanguageModel,
    NodeClassifier,
    TextClassifier,
)

# Tasks export handles, and how to build each for a registered model (small inputs, random weights).
BUILDERS = {
    "image_classification": lambda name: ImageClassifier(name, num_classes=10),
    "language_modeling": lambda name: LanguageModel(name, vocab_size=37, block_size=32),
    "diffusion": lambda name: DiffusionModel(name, image_size=16, num_classes=3, conditional=True),
    "text_classification": lambda name: TextClassifier(name, num_classes=3, vocab_size=100),
    "node_classification": lambda name: NodeClassifier(name, in_channels=16, num_classes=4),
    "graph_classification": lambda name: GraphClassifier(name, in_channels=16, num_classes=4),
}
EXPORTABLE = [n for n in zoo.list_models() if set(zoo.model_info(n).tasks) & set(BUILDERS)]
HEAVY = {n for n in EXPORTABLE if zoo.model_info(n).num_params > 15e6}
# About 30 s each on 2 cores; the same diffusers UNet code path is exported in CI through unet_tiny.
NOT_IN_CI = {"unet_small", "ddpm_unet_cifar"}


def _marks(name: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.slow] * (name in HEAVY) + [pytest.mark.heavy] * (name in NOT_IN_CI)


def write_checkpoint(task: torch.nn.Module, path: Path, **extra) -> Path:
    """A checkpoint laid out as Lightning writes one (task class, hyperparameters, state dict)."""
    hparams = {"_class_path": f"zoo.tasks.{type(task).__name__}", **dict(task.hparams)}
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": hparams, **extra}, path)
    return path


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in EXPORTABLE])
def test_every_exportable_model_exports_and_verifies(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    task_kind = next(t for t in zoo.model_info(name).tasks if t in BUILDERS)
    checkpoint = write_checkpoint(BUILDERS[task_kind](name), tmp_path / "model.ckpt")
    report = export_checkpoint(checkpoint, tmp_path / "out")
    assert report.ok, report.table()
    assert [row["format"] for row in report.rows] == ["onnx", "torchscript", "exported_program"]
    for row in report.rows:
        metadata = read_metadata(tmp_path / "out" / row["file"])
        assert (metadata["model_name"], metadata["zoo_version"]) == (name, zoo.__version__)
        assert metadata["inputs"] == report.metadata["inputs"]
    assert "## Artifacts" in report.model_card.read_text()


@pytest.fixture(scope="module")
def exported_classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LoadedCheckpoint]:
    folder = tmp_path_factory.mktemp("exported")
    torch.manual_seed(0)
    task = ImageClassifier("speedrun_net_tiny", num_classes=10)
    checkpoint = write_checkpoint(task, folder / "model.ckpt")
    assert export_checkpoint(checkpoint, folder).ok
    return folder, load_checkpoint(checkpoint)


@pytest.mark.parametrize("suffix", [".onnx", ".torchscript.pt", ".pt2"])
def test_a_damaged_artifact_fails_verification_with_the_reason(
    suffix: str, exported_classifier: tuple[Path, LoadedCheckpoint], tmp_path: Path
) -> None:
    folder, loaded = exported_classifier
    spec = export_spec(loaded)
    fmt = {".onnx": "onnx", ".torchscript.pt": "torchscript", ".pt2": "exported_program"}[suffix]
    original = (folder / f"speedrun_net_tiny{suffix}").read_bytes()
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(original[: len(original) // 2])
    result = verify_artifact(fmt, truncated, spec)
    assert not result.passed and result.message.startswith("cannot be loaded")
    # Tampered weights: the file loads, but its outputs no longer match eager PyTorch.
    tampered = tmp_path / f"tampered{suffix}"
    tampered.write_bytes(_scale_stored_weights(original, loaded.task.backbone))
    result = verify_artifact(fmt, tampered, spec)
    assert not result.passed
    assert "max abs error" in result.message or "cannot be loaded" in result.message


def _scale_stored_weights(data: bytes, backbone: torch.nn.Module) -> bytes:
    """Overwrite, in a serialized model, the raw bytes of the largest weight stored unchanged with other values.

    Exporters may fold or transpose some weights (ONNX folds constants), so the first tensor found verbatim
    is the one changed.
    """
    for weight in sorted(backbone.state_dict().values(), key=lambda t: -t.numel()):
        if not weight.is_floating_point() or weight.numel() < 64:
            continue
        raw = weight.detach().contiguous().numpy().tobytes()
        start = data.find(raw)
        if start >= 0:
            changed = (weight.detach() * 3 + 0.5).contiguous().numpy().tobytes()
            return data[:start] + changed + data[start + len(raw) :]
    raise AssertionError("no weight is stored verbatim in the artifact")


def test_checkpoints_needing_arbitrary_unpickling_are_refused(tmp_path: Path) -> None:
    task = ImageClassifier("speedrun_net_tiny", num_classes=10)
    path = write_checkpoint(task, tmp_path / "pickled.ckpt", extra_object=functools.partial(print, "boo"))
    with pytest.raises(ValueError, match=r"arbitrary unpickling .* weights_only=True so that opening a file cannot"):
        load_checkpoint(path)


def test_missing_and_unexpected_keys_are_listed(tmp_path: Path) -> None:
    task = ImageClassifier("speedrun_net_tiny", num_classes=10)
    state = task.state_dict()
    dropped = next(iter(state))
    state.pop(dropped)
    state["backbone.extra.weight"] = torch.zeros(1)
    hparams = {"_class_path": "zoo.tasks.ImageClassifier", **dict(task.hparams)}
    torch.save({"state_dict": state, "hyper_parameters": hparams}, tmp_path / "bad.ckpt")
    listed = rf"missing keys \(1\): {dropped}\n.*unexpected keys \(1\): backbone\.extra"
    with pytest.raises(WeightsMismatchError, match=listed):
        load_checkpoint(tmp_path / "bad.ckpt")
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams)}, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match="does not record its task class"):
        load_checkpoint(tmp_path / "bare.ckpt")
    assert load_checkpoint(tmp_path / "bare.ckpt", task_class="zoo.tasks.ImageClassifier").weights == "trained"


def test_an_exported_language_model_generates_like_the_eager_one(tmp_path: Path) -> None:
    from export import load
    from zoo.data.tokenizers import CharTokenizer

    torch.manual_seed(0)
    tokenizer = CharTokenizer.from_text("to be or not to be, that is the question")
    task = LanguageModel("gpt_nano", vocab_size=tokenizer.vocab_size, block_size=16)
    task.tokenizer = tokenizer
    checkpoint = write_checkpoint(task, tmp_path / "lm.ckpt", tokenizer=tokenizer.to_config())
    assert export_checkpoint(checkpoint, tmp_path / "out", formats=["onnx"]).ok
    model = load(tmp_path / "out" / "gpt_nano.onnx")
    assert model.metadata["preprocessing"]["tokenizer"]["kind"] == "zoo"
    # Greedy decoding past the 16-token context: the helper must crop the context as the eager model does.
    assert model.generate("to be", max_new_tokens=20, temperature=0) == task.generate("to be", 20, temperature=0)


def test_a_text_classifier_trained_on_files_predicts_from_raw_text(tmp_path: Path, trainer_factory) -> None:
    import csv

    from export import load
    from zoo.callbacks import CheckpointMetadata
    from zoo.data import TextClassificationDataModule

    rows = [(t, "pos") for t in ("a wonderful film", "I loved it")] * 8 + [
        (t, "neg") for t in ("awful", "I hated it")
    ] * 8
    with (tmp_path / "train.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    data = TextClassificationDataModule(str(tmp_path / "train.csv"), vocab_size=60, max_length=16, batch_size=8)
    torch.manual_seed(0)
    task = TextClassifier("bert_tiny", num_classes=data.num_classes, vocab_size=data.vocab_size)
    trainer = trainer_factory(max_steps=2, callbacks=[CheckpointMetadata()], limit_val_batches=1)
    trainer.fit(task, data)
    trainer.save_checkpoint(tmp_path / "text.ckpt")
    assert export_checkpoint(
        tmp_path / "text.ckpt", tmp_path / "out", formats=["onnx"], task_class="zoo.tasks.TextClassifier"
    ).ok
    model = load(tmp_path / "out" / "bert_tiny.onnx")
    assert model.labels == ["neg", "pos"] and model.metadata["preprocessing"]["tokenizer"]["kind"] == "huggingface"
    texts = ["I loved it", "awful and a very long review that is cut at the model's sixteen tokens, or so"]
    predicted = model.predict(texts, top_k=2)
    encoded = data.tokenizer(texts, truncation=True, max_length=16, padding=True, return_tensors="pt")
    with torch.no_grad():
        eager = task.backbone.eval()(encoded["input_ids"], encoded["attention_mask"]).softmax(dim=-1)
    for row, probabilities in zip(predicted, eager, strict=True):
        assert dict(row) == pytest.approx({"neg": float(probabilities[0]), "pos": float(probabilities[1])}, abs=1e-5)


@pytest.mark.parametrize("suffix", [".onnx", ".torchscript.pt", ".pt2"])
def test_an_artifact_with_a_flipped_weight_bit_is_refused_on_load(
    suffix: str, exported_classifier: tuple[Path, LoadedCheckpoint], tmp_path: Path
) -> None:
    from export import load

    folder, loaded = exported_classifier
    load(folder / f"speedrun_net_tiny{suffix}")  # intact: loads
    data = bytearray((folder / f"speedrun_net_tiny{suffix}").read_bytes())
    for weight in loaded.task.backbone.state_dict().values():  # the first weight the format stores verbatim
        raw = weight.detach().contiguous().numpy().tobytes()
        start = data.find(raw) if weight.is_floating_point() and weight.numel() > 64 else -1
        if start >= 0:
            break
    data[start + len(raw) // 2] ^= 0x01
    (tmp_path / f"flipped{suffix}").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"flipped{suffix} is damaged: .*export the checkpoint again"):
        load(tmp_path / f"flipped{suffix}")


def test_predict_on_a_raw_file_prepares_it_as_evaluation_does(image_tree: Path, tmp_path: Path) -> None:
    """An image folder evaluates on a centre crop of the resized image; predict must see the same pixels."""
    from PIL import Image

    from export import load
    from zoo.data import ImageFolderDataModule
    from zoo.data.vision import evaluation_transform

    wide = tmp_path / "wide.png"
    with Image.open(next((image_tree / "train").glob("*/*.jpg"))) as picture:
        picture.convert("RGB").resize((60, 36)).save(wide)  # non-square: a plain resize would squash it
    data = ImageFolderDataModule(root=str(image_tree), image_size=32, crop_pct=0.8)
    torch.manual_seed(0)
    task = ImageClassifier("speedrun_net_tiny", num_classes=data.num_classes)
    task.adopt_data_facts(data.data_facts)
    checkpoint = {"state_dict": task.state_dict(), "hyper_parameters": {"_class_path": "zoo.tasks.ImageClassifier",
                                                                        **dict(task.hparams)}}  # fmt: skip
    task.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "folder.ckpt")
    assert export_checkpoint(tmp_path / "folder.ckpt", tmp_path / "out", formats=["onnx"]).ok
    model = load(tmp_path / "out" / "speedrun_net_tiny.onnx")
    assert model.signature.preprocessing.crop_pct == 0.8
    with Image.open(wide) as picture:
        expected = evaluation_transform(32, 0.8, data.mean, data.std)(picture.convert("RGB"))
    torch.testing.assert_close(model.preprocess_images([wide])[0], expected)
    with torch.no_grad():
        eager = task.eval()(expected[None]).softmax(dim=-1)[0]
    ranked = dict(model.predict([wide], top_k=data.num_classes)[0])
    assert ranked == pytest.approx({name: float(p) for name, p in zip(data.class_names, eager, strict=True)}, abs=1e-5)
    with pytest.raises(ValueError, match="takes a list of inputs, got the single"):
        model.predict(str(wide))
    with pytest.raises(ValueError, match="got an empty list"):
        model.predict([])
