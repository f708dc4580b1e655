"""What ``zoo models`` prints, kept on disk so that listing does not build every model to count its parameters.

Counting a model's parameters means building it (on the meta device), which imports every family's library:
``zoo models`` took 5.8 s. The listing of the built-in families is saved under ``$ZOO_CACHE/registry``, keyed
on the content of zoo's model sources and the versions of the libraries they build on, so a changed model or
an upgraded library gives a fresh listing; a warm ``zoo models`` reads one JSON file and imports no torch.
Library listings (``timm/*``, ``hf/*``) always go to the registry.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from zoo.files import atomic_write, cache_dir

__all__ = ["model_listing"]

_SOURCES = Path(__file__).resolve().parent
_LIBRARIES = ("torch", "timm", "transformers", "diffusers", "torch_geometric")


def model_listing(pattern: str = "*", family: str | None = None) -> list[dict[str, Any]]:
    """``ModelEntry.to_dict()`` of each model matching ``pattern`` (and ``family``), sorted by name.

    Raises:
        ConfigError: For an unknown family (from the registry).
    """
    from zoo.registry import FAMILIES, list_models, model_info

    if "/" in pattern:
        return [model_info(name).to_dict() for name in list_models(pattern, family=family)]
    if family is not None and family not in FAMILIES:
        list_models(pattern, family=family)  # raises the registry's error for an unknown family
    everything = _cached_listing()
    return [e for e in everything if fnmatch.fnmatchcase(e["name"], pattern) and family in (None, e["family"])]


def _cached_listing() -> list[dict[str, Any]]:
    path = cache_dir("registry") / f"models-{_fingerprint()}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    from zoo.registry import list_models, model_info

    listing = [model_info(name).to_dict() for name in list_models("*")]
    try:
        with atomic_write(path, text=True) as f:
            json.dump(listing, f)
    except OSError:
        pass  # a read-only cache: list without keeping it
    return listing


def _fingerprint() -> str:
    """A hash of zoo's registry and model sources and of the library versions the models are built with."""
    digest = hashlib.sha256()
    for source in sorted([_SOURCES / "registry.py", *(_SOURCES / "models").rglob("*.py")]):
        digest.update(source.relative_to(_SOURCES).as_posix().encode() + b"\0" + source.read_bytes())
    for library in _LIBRARIES:
        try:
            digest.update(f"{library}={metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library}=-".encode())
    return digest.hexdigest()[:16]
