"""Bad input to any `zoo` command: exit status 2 and a line or two that name the file, key or value."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from zoo.cli import main
from zoo.errors import ConfigError, DataError, ZooError, find_user_error

REPO = Path(__file__).resolve().parents[2]
LEGACY = REPO / "tests" / "fixtures" / "legacy"
QUICK = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1"]  # fmt: skip


def _flipped(tmp: Path) -> Path:
    """A legacy checkpoint with one weight bit flipped (what the ``flip_a_weight_bit`` fixture left in ``tmp``)."""
    return tmp / "flipped.ckpt"


def _truncated(tmp: Path) -> Path:
    data = (LEGACY / "image_classifier.ckpt").read_bytes()
    (tmp / "half.ckpt").write_bytes(data[: len(data) // 2])
    return tmp / "half.ckpt"


def _binary_corpus(tmp: Path) -> Path:
    (tmp / "corpus.txt").write_bytes(b"plain words, then a Latin-1 byte: caf" + b"\xe9 and more text\n" * 50)
    return tmp / "corpus.txt"


def _broken_images(tmp: Path, image_tree: Path) -> Path:
    root = tmp / "broken"
    shutil.copytree(image_tree, root)
    for path in (root / "train").glob("*/*.jpg"):
        path.write_bytes(path.read_bytes()[:40])  # every training image cut short
    return root


def _incomplete_cora(tmp: Path) -> Path:
    raw = tmp / "data" / "Cora" / "raw"
    shutil.copytree(REPO.parent / "shared" / "data" / "planetoid" / "Cora" / "raw", raw)
    (raw / "ind.cora.graph").unlink()
    return tmp / "data"


def _folder_fit(tmp: Path, tree: Path) -> list[str]:
    return [
        "fit", "--model", "zoo.tasks.ImageClassifier", "--model.init_args.backbone", "speedrun_net_tiny",
        "--data", "zoo.data.ImageFolderDataModule", "--data.init_args.root", str(_broken_images(tmp, tree)),
        "--data.init_args.image_size", "32", "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4",
        "--trainer.logger", "false", *QUICK,
    ]  # fmt: skip


def _recipe(recipe: str, *args: str) -> list[str]:
    return [args[0], "--config", str(REPO / "recipes" / f"{recipe}.yaml"), *args[1:]]


# Each case: the arguments (made from a temporary folder and a small image tree) and what the message names.
CASES: dict[str, tuple[Callable[[Path, Path], list[str]], list[str]]] = {
    "a value out of range in a recipe": (
        lambda tmp, tree: _recipe("quickstart", "fit", "--data.init_args.val_split", "1.5"),
        ["val_split", "1.5"],
    ),
    "a backbone of another task": (
        lambda tmp, tree: _recipe("quickstart", "fit", "--model.init_args.backbone", "gpt_nano"),
        ["'gpt_nano'", "not image classification"],
    ),
    "a checkpoint of another task given with a recipe": (
        lambda tmp, tree: _recipe("quickstart", "test", "--ckpt_path", str(LEGACY / "text_classifier.ckpt")),
        ["text_classifier.ckpt", "zoo.tasks.TextClassifier", "zoo.tasks.ImageClassifier"],
    ),
    "a damaged checkpoint": (
        lambda tmp, tree: _recipe("quickstart", "test", "--ckpt_path", str(_flipped(tmp))),
        ["flipped.ckpt is damaged"],
    ),
    "a truncated checkpoint to export": (
        lambda tmp, tree: ["export", "--ckpt_path", str(_truncated(tmp)), "--out", str(tmp / "out")],
        ["half.ckpt is truncated"],
    ),
    "a language-model command on an image checkpoint": (
        lambda tmp, tree: ["generate", "--ckpt_path", str(LEGACY / "image_classifier.ckpt")],
        ["image_classifier.ckpt holds a zoo.tasks.ImageClassifier checkpoint, not a zoo.tasks.LanguageModel"],
    ),
    "a corpus that is not UTF-8": (
        lambda tmp, tree: _recipe(
            "shakespeare/gpt_nano", "fit", "--data.init_args.path", str(_binary_corpus(tmp)), *QUICK
        ),
        ["corpus.txt is not UTF-8 text: byte 37 is 0xe9"],
    ),
    "a Planetoid folder missing a file": (
        lambda tmp, tree: _recipe("cora/gcn", "fit", "--data.init_args.root", str(_incomplete_cora(tmp)), *QUICK),
        ["Cora raw files incomplete", "lacks ind.cora.graph"],
    ),
    "images cut short, found at set-up": (
        _folder_fit,
        ["images under", "broken/train cannot be used", ".jpg (not a readable image", "check_images=false"],
    ),
    "an image that cannot be decoded, found when read": (
        lambda tmp, tree: [*_folder_fit(tmp, tree), "--data.init_args.check_images", "false"],
        ["cannot be decoded", ".jpg"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_2_with_a_short_message_that_names_it(
    case: str,
    tmp_path: Path,
    image_tree: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flip_a_weight_bit,
) -> None:
    flip_a_weight_bit(LEGACY / "image_classifier.ckpt", tmp_path / "flipped.ckpt")
    make_args, subjects = CASES[case]
    args = make_args(tmp_path, image_tree)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["zoo", *args])
    with pytest.raises(SystemExit) as stopped:
        main(args)
    error = capsys.readouterr().err.strip()
    last = error.splitlines()[-1]
    assert stopped.value.code == 2, error
    assert "Traceback" not in error and last.startswith(("zoo ", "error:")), error
    assert len(last) < 600 and all(subject in last for subject in subjects), last


def test_a_wrapped_user_error_is_found_and_anything_else_is_not() -> None:
    cause = DataError("corpus.txt is not UTF-8 text")
    try:
        try:
            raise cause
        except DataError as err:
            raise ValueError("Call to compute_fn of link ... failed") from err
    except ValueError as wrapped:
        assert find_user_error(wrapped) is cause
    assert find_user_error(RuntimeError("a bug")) is None
    assert isinstance(ConfigError("x"), ValueError) and issubclass(ConfigError, ZooError)
