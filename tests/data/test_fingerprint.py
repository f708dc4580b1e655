"""The data fingerprint: order-free, sensitive to any sample or label, written with every run, checked on resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.data import ImageFolderDataModule, PlanetoidDataModule
from zoo.data.fingerprint import SplitContent, fingerprint, fingerprint_changes
from zoo.data.vision import ArrayImageDataset
from zoo.lightning_cli import ZooLightningCLI


def _arrays(seed: int = 0, n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 5, n)


def test_the_content_hash_ignores_order_and_sees_one_pixel_or_one_label() -> None:
    images, labels = _arrays()
    base = fingerprint({"train": ArrayImageDataset(images, labels).content()})
    order = np.random.default_rng(1).permutation(len(labels))
    assert fingerprint({"train": ArrayImageDataset(images[order], labels[order]).content()}) == base

    pixel = images.copy()
    pixel[7, 3, 3, 1] ^= 1
    assert (
        fingerprint({"train": ArrayImageDataset(pixel, labels).content()})["content_sha256"] != base["content_sha256"]
    )
    swapped = labels.copy()
    first, second = np.flatnonzero(labels != labels[0])[0], 0
    swapped[[first, second]] = swapped[[second, first]]  # same label counts, two images relabelled
    changed = fingerprint({"train": ArrayImageDataset(images, swapped).content()})
    assert changed["class_counts"] == base["class_counts"] and changed["content_sha256"] != base["content_sha256"]
    assert fingerprint_changes(base, changed) == ["the train split's content"]

    assert base["splits"] == {"train": 50} and sum(base["class_counts"]["train"]) == 50
    pixels = images.reshape(-1, 3) / 255.0
    assert base["channel_mean"] == pytest.approx(pixels.mean(0), abs=1e-5)
    assert base["channel_std"] == pytest.approx(pixels.std(0), abs=1e-5)


def test_fewer_samples_are_named() -> None:
    before = fingerprint({"train": SplitContent(np.arange(10, dtype=np.uint64), np.arange(10) % 2)})
    after = fingerprint({"train": SplitContent(np.arange(9, dtype=np.uint64), np.arange(9) % 2)})
    assert fingerprint_changes(before, after) == [
        "the train split's content", "splits of train: 10 -> 9", "class counts of train: [5, 5] -> [5, 4]",
    ]  # fmt: skip


def test_image_folders_and_graphs_report_a_fingerprint(image_tree: Path, shared_data: Path) -> None:
    data = ImageFolderDataModule(root=image_tree, batch_size=4, num_workers=0)
    data.setup("fit")
    record = data.fingerprint()
    assert record["splits"]["test"] == 40 and record["splits"]["train"] + record["splits"]["val"] == 80
    assert record["class_counts"]["test"] == [4] * 10
    copy = image_tree.parent / "copy"
    shutil.copytree(image_tree, copy)  # another place, same files: same content
    moved = ImageFolderDataModule(root=copy, batch_size=4, num_workers=0)
    moved.setup("fit")
    assert moved.fingerprint()["content_sha256"] == record["content_sha256"]

    graph = PlanetoidDataModule(root=shared_data, name="Cora")
    graph.setup("fit")
    cora = graph.fingerprint()
    assert cora["dataset"] == "cora" and cora["splits"] == {"train": 140, "val": 500, "test": 1000}
    assert cora["class_counts"]["train"] == [20] * 7


def test_a_run_records_its_data_and_a_resume_on_changed_data_says_what_changed(
    image_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [
        "fit", "--model", "zoo.tasks.ImageClassifier", "--model.init_args.backbone", "speedrun_net_tiny",
        "--data", "zoo.data.ImageFolderDataModule", "--data.init_args.root", str(image_tree),
        "--data.init_args.image_size", "32", "--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0",
        "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", "--test_after_fit", "false",
        "--trainer.enable_model_summary", "false",
    ]  # fmt: skip
    ZooLightningCLI(args=args)
    run = tmp_path / "runs" / "zoo" / "version_0"
    recorded = json.loads((run / "data.json").read_text())
    assert recorded["splits"]["test"] == 40
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["zoo_metadata"]["data_fingerprint"] == recorded

    next(iter((image_tree / "test" / "cat").iterdir())).unlink()
    with pytest.warns(UserWarning, match=r"the data differs .*splits of test: 40 -> 39"):
        ZooLightningCLI(args=[*args, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
    assert json.loads((run / "data.resume-1.json").read_text())["splits"]["test"] == 39
