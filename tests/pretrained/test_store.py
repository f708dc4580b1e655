"""Getting a card's file: file:// downloads with progress, checksums, tampering, mirrors, offline use."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from zoo.pretrained import ChecksumError, WeightsUnavailableError, get_card, weights_file


@pytest.fixture
def remote_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """gcn.cora's card under a name the package does not hold, its file served from a file:// "server"."""
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_WEIGHTS_URL", raising=False)
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    card = get_card("gcn", "cora")
    server = tmp_path / "server"
    server.mkdir()
    source = weights_file(card)  # the packaged file
    filename = "gcn.cora-remote.safetensors"
    (server / filename).write_bytes(source.read_bytes())
    return dataclasses.replace(card, filename=filename, urls=((server / filename).as_uri(),)), server


def test_download_over_file_url_shows_progress_checks_the_hash_and_caches(remote_card, tmp_path, capfd) -> None:
    card, _ = remote_card
    path = weights_file(card)
    assert path == tmp_path / "cache" / "weights" / card.filename
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card.sha256
    assert "100%" in capfd.readouterr().err  # torch.hub's progress bar
    assert weights_file(card) == path  # the second call reads the cache: nothing more is printed
    assert "100%" not in capfd.readouterr().err


def test_a_tampered_download_is_deleted_and_the_error_names_both_hashes(remote_card, tmp_path) -> None:
    card, server = remote_card
    (server / card.filename).write_bytes(b"not the weights")
    bad = hashlib.sha256(b"not the weights").hexdigest()
    with pytest.raises(ChecksumError, match=f"{bad}.*card says {card.sha256}.*deleted"):
        weights_file(card)
    assert not (tmp_path / "cache" / "weights" / card.filename).exists()
    assert not list((tmp_path / "cache" / "weights").iterdir())  # no partial file left either


def test_a_tampered_cached_copy_is_deleted_too(remote_card, tmp_path) -> None:
    card, _ = remote_card
    cached = weights_file(card)
    cached.write_bytes(cached.read_bytes()[:-1] + b"\0")
    with pytest.raises(ChecksumError, match="deleted it"):
        weights_file(card)
    assert not cached.exists()
    assert weights_file(card) == cached  # downloaded afresh


def test_offline_reads_the_cache_and_says_what_to_do_without_one(remote_card, monkeypatch) -> None:
    card, _ = remote_card
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"ZOO_OFFLINE=1 and no cached copy at .*weights/gcn.cora-remote"):
        weights_file(card)
    monkeypatch.delenv("ZOO_OFFLINE")
    cached = weights_file(card)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert weights_file(card) == cached


def test_unreachable_sources_are_each_named_and_a_mirror_is_tried_first(remote_card, tmp_path, monkeypatch) -> None:
    card, server = remote_card
    gone = dataclasses.replace(card, urls=((tmp_path / "nowhere" / card.filename).as_uri(),))
    with pytest.raises(WeightsUnavailableError, match=r"could not download(.|\n)*nowhere/gcn.cora-remote"):
        weights_file(gone)
    monkeypatch.setenv("ZOO_WEIGHTS_URL", server.as_uri())  # an air-gapped site's mirror holds the file
    assert weights_file(gone).is_file()


def test_the_packaged_file_needs_no_network(monkeypatch) -> None:
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    card = get_card("gcn.cora")
    assert weights_file(card).parent.name == "files"


def test_object_store_urls_go_through_fsspec(remote_card, tmp_path) -> None:
    """An object-store URL (here fsspec's in-memory store, the same code path as s3:// or gs://)."""
    import fsspec

    card, server = remote_card
    with fsspec.open(f"memory://zoo-weights/{card.filename}", "wb") as f:
        f.write((server / card.filename).read_bytes())
    stored = dataclasses.replace(card, urls=(f"memory://zoo-weights/{card.filename}",))
    assert weights_file(stored) == tmp_path / "cache" / "weights" / card.filename
