"""Shared fixtures: real data from ``../shared/data`` (via ``$ZOO_DATA``) and a per-session cache."""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

import lightning as L
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MINI_ARCHIVE = REPO / "zoo" / "data" / "assets" / "cifar10-mini.tar.gz"

# Tests, CI and benchmarks read the shared data; subprocesses inherit these variables.
os.environ.setdefault("ZOO_DATA", str(SHARED_DATA))


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Decoded-array caches go to a fresh folder per session, never into the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("zoo-cache")
    previous = os.environ.get("ZOO_CACHE")
    os.environ["ZOO_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("ZOO_CACHE", None)
    else:
        os.environ["ZOO_CACHE"] = previous


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; tests that need the full data sets skip when it is absent."""
    if not (SHARED_DATA / "cifar10-jpeg.tar.gz").is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


def _fit(recipe: str, root: Path, steps: int, *extra: str) -> Path:
    """``zoo fit`` of a recipe for ``steps`` steps into ``root``, seeded; the path of its ``last.ckpt``."""
    from zoo.lightning_cli import ZooLightningCLI

    torch.manual_seed(0)
    cli = ZooLightningCLI(args=["fit", "--config", str(REPO / recipe), "--trainer.max_steps", str(steps),
                                "--trainer.limit_val_batches", "2", "--test_after_fit", "false",
                                "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                                "--trainer.default_root_dir", str(root), *extra])  # fmt: skip
    return Path(cli.trainer.checkpoint_callback.last_model_path)


@pytest.fixture(scope="session")
def trained_cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """speedrun_net_tiny after 60 steps on the shipped CIFAR-10 subset (about 36% accuracy): its ``last.ckpt``.

    Shared by the compression tests, which need a network whose answers mean something but not a good one.
    """
    root = tmp_path_factory.mktemp("trained_cnn")
    return _fit("recipes/quickstart.yaml", root, 60, "--data.init_args.batch_size", "64",
                "--data.init_args.num_workers", "0")  # fmt: skip


@pytest.fixture(scope="session")
def trained_gpt_nano(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """gpt_nano after 40 steps on Tiny Shakespeare (validation perplexity about 16): its ``last.ckpt``."""
    return _fit("recipes/shakespeare/gpt_nano.yaml", tmp_path_factory.mktemp("trained_gpt_nano"), 40)


@pytest.fixture(scope="session")
def trained_text_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bert_tiny after 6 epochs on 48 short positive/negative reviews (36 steps): its ``last.ckpt``."""
    import csv

    from zoo.lightning_cli import ZooLightningCLI

    root = tmp_path_factory.mktemp("trained_text_classifier")
    rows = [(t, "pos") for t in ("a wonderful film", "truly great acting", "I loved it")] * 8
    rows += [(t, "neg") for t in ("a terrible film", "truly awful acting", "I hated it")] * 8
    train = root / "train.csv"
    with train.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    torch.manual_seed(0)
    cli = ZooLightningCLI(args=[
        "fit", "--model", "zoo.tasks.TextClassifier", "--model.init_args.backbone", "bert_tiny",
        "--data", "zoo.data.TextClassificationDataModule", "--data.init_args.train_file", str(train),
        "--data.init_args.vocab_size", "120", "--data.init_args.batch_size", "8", "--trainer.max_epochs", "6",
        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root / "runs"),
    ])  # fmt: skip
    return Path(cli.trainer.checkpoint_callback.last_model_path)


def extract_image_tree(target: Path, per_class: int, splits: tuple[str, ...] = ("train", "test")) -> Path:
    """Extract ``per_class`` real CIFAR-10 JPEGs per class and split from the mini archive into ``target``."""
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(MINI_ARCHIVE) as archive:
        for member in archive.getmembers():
            split, cls, name = Path(member.name).parts
            if split in splits and taken.get((split, cls), 0) < per_class:
                taken[split, cls] = taken.get((split, cls), 0) + 1
                out = target / split / cls / name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.extractfile(member).read())
    return target


@pytest.fixture(scope="session")
def extract_images():
    """:func:`extract_image_tree`, for tests that shape a tree of their own (e.g. skew its classes)."""
    return extract_image_tree


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    """A tiny real ImageFolder tree: 8 train and 4 test CIFAR-10 images per class."""
    root = tmp_path / "tree"
    extract_image_tree(root, per_class=8, splits=("train",))
    extract_image_tree(root, per_class=4, splits=("test",))
    return root


def quiet_trainer(root: Path, **overrides) -> L.Trainer:
    """A real CPU Lightning trainer that prints and saves nothing unless asked."""
    settings = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "default_root_dir": root,
    }
    return L.Trainer(**{**settings, **overrides})


@pytest.fixture
def trainer_factory(tmp_path: Path):
    """``trainer_factory(max_steps=2, ...)`` builds a :func:`quiet_trainer` rooted in the test's folder."""
    return lambda **overrides: quiet_trainer(tmp_path, **overrides)


@pytest.fixture
def quick_fit() -> list[str]:
    """`zoo fit` arguments that keep a quickstart run to seconds: small batches, few eval batches, no bars."""
    return [
        "--trainer.limit_val_batches", "2",
        "--trainer.limit_test_batches", "2",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--data.init_args.batch_size", "16",
        "--data.init_args.num_workers", "0",
    ]  # fmt: skip


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--run-heavy``: also run the tests marked heavy."""
    parser.addoption("--run-heavy", action="store_true", help="also run the tests marked heavy (kept out of CI)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``heavy`` unless asked for: they would push CI past its 15-minute budget."""
    if config.getoption("--run-heavy") or os.environ.get("ZOO_HEAVY_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="heavy: run with --run-heavy or ZOO_HEAVY_TESTS=1 (kept out of CI for time)")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


def _flip_a_weight_bit(path: Path, out: Path) -> tuple[str, str]:
    """Copy ``path`` to ``out`` with one bit flipped in the stored bytes of its largest weight.

    Returns the zip member and the state-dict key of that weight.
    """
    state = torch.load(path, weights_only=True)["state_dict"]
    key = max(state, key=lambda k: state[k].numel())
    wanted = state[key].contiguous().numpy().tobytes()
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if archive.read(i) == wanted)
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.file_size // 2] ^= 0x10
    out.write_bytes(bytes(data))
    return info.filename, key


@pytest.fixture
def flip_a_weight_bit():
    """``flip(checkpoint, out) -> (member, key)``: a copy of a checkpoint with one bit of its largest weight flipped."""
    return _flip_a_weight_bit
