"""Where a card's file comes from: the package, the cache, a mirror or the card's URLs, always checksummed.

Lookup order for ``card.filename``:

1. the package (``zoo/pretrained/files/``): small weights ship with zoo and need no network;
2. the cache, ``$ZOO_CACHE/weights/`` (default ``~/.cache/zoo/weights/``): anything downloaded before;
3. unless ``ZOO_OFFLINE=1``: ``$ZOO_WEIGHTS_URL/<filename>`` (a mirror for air-gapped sites: ``file://``,
   ``https://`` or an object store), then each of ``card.urls`` in turn, downloaded with
   ``torch.hub.download_url_to_file`` (progress bar on a terminal) or, for ``s3://``/``gs://``/... URLs,
   through fsspec.

Every file is checked against ``card.sha256`` before it is used; a downloaded or cached file that differs is
deleted and the error names both hashes. A download goes to a temporary name and is renamed into the cache
only once its hash is right, so an interrupted download never leaves a file that looks finished.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from zoo.errors import DataError, MissingExtraError, MissingFileError
from zoo.files import cache_dir

if TYPE_CHECKING:
    from zoo.pretrained.card import WeightCard

__all__ = ["PACKAGED", "ChecksumError", "WeightsUnavailableError", "sha256_of", "weights_file"]

PACKAGED = Path(__file__).with_name("files")
_URL_SCHEMES = ("http", "https", "file", "ftp")


class ChecksumError(DataError):
    """A weights file whose SHA-256 is not the card's; the file has been deleted."""


class WeightsUnavailableError(MissingFileError):
    """No copy of a card's file could be found or downloaded; the message says where zoo looked and why."""


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_file(card: WeightCard, progress: bool = True) -> Path:
    """The local path of ``card``'s file, downloading it into the cache if needed; checksummed.

    Args:
        card: The weight card.
        progress: Show a progress bar while downloading.

    Raises:
        ChecksumError: If a cached or downloaded file's SHA-256 differs from the card's (the file is deleted).
        WeightsUnavailableError: If the file is nowhere to be found: offline without a cached copy, or every
            source failed (each one's reason is listed).
    """
    packaged = PACKAGED / card.filename
    if packaged.is_file():
        _verify(packaged, card, delete=False)
        return packaged
    cached = cache_dir("weights") / card.filename
    if cached.is_file():
        _verify(cached, card, delete=True)
        return cached
    sources = _sources(card)
    if os.environ.get("ZOO_OFFLINE") == "1":
        raise WeightsUnavailableError(
            f"{card.name}: ZOO_OFFLINE=1 and no cached copy at {cached}; copy {card.filename} there (its SHA-256 "
            f"is {card.sha256}), or unset ZOO_OFFLINE to download it from {sources[0] if sources else 'nowhere'}"
        )
    if not sources:
        raise WeightsUnavailableError(
            f"{card.name}: the card lists no URL and {card.filename} is neither in the package nor at {cached}; "
            "set ZOO_WEIGHTS_URL to a folder or mirror that holds it"
        )
    failures = []
    for url in sources:
        try:
            _download(url, cached, progress)
        except (OSError, ValueError) as err:  # urllib's URLError and HTTPError are OSErrors
            failures.append(f"  {url}: {err}")
            continue
        _verify(cached, card, delete=True, source=url)
        return cached
    raise WeightsUnavailableError(
        f"{card.name}: could not download {card.filename} (no cached copy at {cached}):\n"
        + "\n".join(failures)
        + "\nOffline? Copy the file into the cache, or set ZOO_WEIGHTS_URL to a mirror that holds it."
    )


def _sources(card: WeightCard) -> list[str]:
    mirror = os.environ.get("ZOO_WEIGHTS_URL", "").strip()
    urls = [f"{mirror.rstrip('/')}/{card.filename}"] if mirror else []
    return urls + [u for u in card.urls if u not in urls]


def _download(url: str, target: Path, progress: bool) -> None:
    """Fetch ``url`` to a temporary name beside ``target``, then rename it into place."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        if urlparse(url).scheme in _URL_SCHEMES:
            from torch.hub import download_url_to_file

            download_url_to_file(url, str(partial), progress=progress)
        else:
            _download_with_fsspec(url, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _download_with_fsspec(url: str, target: Path) -> None:
    try:
        import fsspec
    except ImportError as err:
        raise MissingExtraError(
            f"{url}: reading object-store URLs needs fsspec and the store's package (s3fs, gcsfs, adlfs): "
            "pip install fsspec s3fs"
        ) from err
    with fsspec.open(url, "rb") as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink, length=1 << 20)


def _verify(path: Path, card: WeightCard, delete: bool, source: str | None = None) -> None:
    actual = sha256_of(path)
    if actual == card.sha256:
        return
    where = f" (downloaded from {source})" if source else ""
    if delete:
        path.unlink(missing_ok=True)
    action = "deleted it" if delete else "it ships with zoo: reinstall the package"
    raise ChecksumError(
        f"{card.name}: {path}{where} has SHA-256 {actual}, but the card says {card.sha256}; {action}. "
        "A mirror or cache holding another file under this name is the usual cause."
    )
