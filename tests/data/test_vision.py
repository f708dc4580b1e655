from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data import CIFAR10DataModule, ImageFolderDataModule, cache_dir, data_root
from zoo.data.vision import CIFAR10_MEAN, CIFAR10_STD


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_root_defaults_to_zoo_data_then_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "data"))
    assert data_root() == tmp_path / "data"
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("ZOO_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "zoo"
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    assert cache_dir("arrays") == tmp_path / "cache" / "arrays"
    assert cache_dir("arrays").is_dir()


def test_full_cifar10_from_the_shared_archive(shared_data: Path, session_cache: Path) -> None:
    before = _snapshot(shared_data)
    dm = CIFAR10DataModule(batch_size=64, num_workers=0)  # root comes from $ZOO_DATA
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (45_000, 5_000, 10_000)
    assert dm.class_names[:3] == ("airplane", "automobile", "bird")
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (128, 3, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.min() >= 0 and labels.max() < 10
    assert _snapshot(shared_data) == before  # the data folder is never written into
    assert list((session_cache / "arrays").glob("cifar10-jpeg-*.npz"))


def test_mini_variant_ships_with_the_package() -> None:
    dm = CIFAR10DataModule(variant="mini", root="/nonexistent", num_workers=0)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (9_000, 1_000, 2_000)
    assert np.bincount(dm.test_set.base.labels.numpy()).tolist() == [200] * 10


def test_cifar10_from_an_image_folder_tree_is_decoded_once(image_tree: Path, session_cache: Path) -> None:
    dm = CIFAR10DataModule(root=str(image_tree), val_split=10, batch_size=16, num_workers=0)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (70, 10, 40)
    cached = sorted((session_cache / "arrays").glob("tree-*.npz"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    CIFAR10DataModule(root=str(image_tree), val_split=10, num_workers=0).setup()
    assert cached[0].stat().st_mtime_ns == stamp  # read back, not decoded again


def test_batches_are_normalised_and_augmented(image_tree: Path) -> None:
    dm = CIFAR10DataModule(root=str(image_tree), val_split=10, num_workers=0)
    dm.setup()
    raw = torch.from_numpy(dm.train_set.base.images[0]).permute(2, 0, 1).float() / 255
    mean, std = torch.tensor(CIFAR10_MEAN)[:, None, None], torch.tensor(CIFAR10_STD)[:, None, None]
    evaluated, _ = dm.val_set[0]
    assert torch.allclose(
        evaluated * std + mean, torch.from_numpy(dm.val_set.base.images[0]).permute(2, 0, 1) / 255, atol=1e-6
    )
    torch.manual_seed(0)
    views = [dm.train_set[0][0] * std + mean for _ in range(8)]
    assert any(not torch.allclose(v, raw, atol=1e-6) for v in views)  # random crop and flip happen
    assert all(v.shape == (3, 32, 32) for v in views)


def test_validation_split_is_seeded_and_disjoint(image_tree: Path) -> None:
    a = CIFAR10DataModule(root=str(image_tree), val_split=0.25, seed=1, num_workers=0)
    b = CIFAR10DataModule(root=str(image_tree), val_split=0.25, seed=1, num_workers=0)
    a.setup(), b.setup()
    assert np.array_equal(a.val_set.base.images, b.val_set.base.images)
    assert len(a.val_set) == 20 and len(a.train_set) == 60
    train_rows = {img.tobytes() for img in a.train_set.base.images}
    assert not any(img.tobytes() in train_rows for img in a.val_set.base.images)


def test_loader_settings_follow_the_machine(image_tree: Path) -> None:
    dm = CIFAR10DataModule(root=str(image_tree), val_split=10, batch_size=16)
    dm.setup()
    loader = dm.train_dataloader()
    cpus = len(os.sched_getaffinity(0))
    assert loader.num_workers == max(0, min(8, cpus - 1))
    assert loader.persistent_workers == (loader.num_workers > 0)
    assert loader.pin_memory == torch.cuda.is_available()
    assert loader.drop_last and dm.eval_batch_size == 32


def test_missing_cifar_data_names_the_places_searched(tmp_path: Path) -> None:
    dm = CIFAR10DataModule(root=str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match=rf"CIFAR-10 not found under {tmp_path}.*cifar10-jpeg.tar.gz.*download=True"
    ):
        dm.prepare_data()


def test_empty_split_in_archive_is_named(tmp_path: Path) -> None:
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add_image(tar, "train/cat/0.png", Image.new("RGB", (32, 32)))
    with pytest.raises(FileNotFoundError, match=r"no images under 'test/<class>/'"):
        CIFAR10DataModule(root=str(tmp_path)).prepare_data()


def test_image_with_wrong_channel_count_is_named(tmp_path: Path) -> None:
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            _add_image(tar, f"{split}/cat/0.png", Image.new("RGB", (32, 32)))
        _add_image(tar, "train/dog/7.png", Image.new("L", (32, 32)))
    with pytest.raises(ValueError, match=r"train/dog/7.png: image has 1 channel\(s\) \(mode L\), expected 3"):
        CIFAR10DataModule(root=str(tmp_path)).prepare_data()


def _add_image(tar: tarfile.TarFile, name: str, image: Image.Image) -> None:
    data = io.BytesIO()
    image.save(data, format="PNG")
    info = tarfile.TarInfo(name)
    info.size = data.tell()
    data.seek(0)
    tar.addfile(info, data)


def test_image_folder_with_held_out_validation(image_tree: Path) -> None:
    dm = ImageFolderDataModule(root=str(image_tree), image_size=24, val_split=0.25, batch_size=8, num_workers=0)
    assert dm.num_classes == 10 and dm.in_chans == 3 and dm.class_names[0] == "airplane"
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (60, 20, 40)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 24, 24) and labels.dtype == torch.int64
    images, _ = next(iter(dm.test_dataloader()))
    assert images.shape == (16, 3, 24, 24)


def test_image_folder_greyscale_and_explicit_val(image_tree: Path) -> None:
    (image_tree / "test").rename(image_tree / "val")
    dm = ImageFolderDataModule(root=str(image_tree), image_size=32, in_chans=1, num_workers=0)
    dm.setup()
    assert len(dm.train_set) == 80 and len(dm.val_set) == 40 and dm.test_set is None and not dm.has_test_data
    images, _ = next(iter(dm.val_dataloader()))
    assert images.shape[1] == 1
    with pytest.raises(RuntimeError, match="no test data"):
        dm.test_dataloader()


def test_image_folder_missing_or_empty_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=rf"data folder {tmp_path / 'train'} does not exist"):
        ImageFolderDataModule(root=str(tmp_path))
    (tmp_path / "train").mkdir()
    data = ImageFolderDataModule(root=str(tmp_path))  # classes are listed when first needed, not at creation
    with pytest.raises(FileNotFoundError, match="has no class folders"):
        _ = data.num_classes
    (tmp_path / "train" / "cat").mkdir()
    with pytest.raises(FileNotFoundError, match=r"class folder .*train/cat holds no image"):
        _ = ImageFolderDataModule(root=str(tmp_path)).data_facts


def test_image_folder_split_with_other_classes_is_named(image_tree: Path) -> None:
    (image_tree / "test" / "truck").rename(image_tree / "test" / "lorry")
    dm = ImageFolderDataModule(root=str(image_tree), num_workers=0)
    with pytest.raises(ValueError, match=r"classes differ .*\['lorry', 'truck'\]"):
        dm.setup()


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"val_split": -1}, {"num_workers": -2}, {"variant": "tiny"}])
def test_bad_loader_settings_are_named(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        CIFAR10DataModule(**kwargs)
