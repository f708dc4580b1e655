"""What ``zoo serve`` serves: an exported artifact as it is, or a checkpoint run eagerly (or exported first).

Every path ends in an :class:`export.ExportedModel`, so the server has one way to preprocess, run and label,
the same as ``export.load(...).predict``. An artifact whose quantization failed its quality gate (metadata
``status`` starting with ``failed``) is refused unless the user says so.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import torch

from export.predict import ExportedModel, load
from zoo.errors import ConfigError, MissingFileError

__all__ = ["RUNTIMES", "load_servable", "model_version", "runtime_of"]

RUNTIMES = ("onnxruntime", "torchscript", "exported_program", "eager")
_FORMAT_OF_RUNTIME = {"onnxruntime": "onnx", "torchscript": "torchscript", "exported_program": "exported_program"}
_RUNTIME_OF_FORMAT = {fmt: runtime for runtime, fmt in _FORMAT_OF_RUNTIME.items()}


def load_servable(
    path: str | Path, runtime: str | None = None, allow_failed: bool = False, reference_samples: int = 1024
) -> ExportedModel:
    """Load ``path`` (an artifact or a ``.ckpt``) for serving with ``runtime``.

    Args:
        path: ``.onnx``, ``.torchscript.pt``, ``.pt2`` or a zoo checkpoint.
        runtime: For an artifact, its own runtime (the default; another is refused). For a checkpoint,
            ``eager`` (default) runs the task's network in PyTorch; another exports it to a temporary folder
            first, verified against eager as ``zoo export`` does.
        allow_failed: Serve an artifact whose quality gate failed (its metadata ``status``).
        reference_samples: For a checkpoint, validation inputs read for the drift reference an export records
            (see :func:`export.reference.drift_reference`); 0 for none.

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        ValueError: For an unknown runtime, one the artifact cannot run on, or a failed artifact.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist; give an artifact from `zoo export` or a checkpoint")
    if runtime is not None and runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; choose from {RUNTIMES}")
    if path.suffix == ".ckpt":
        model = _from_checkpoint(path, runtime or "eager", reference_samples)
    else:
        model = load(path)
        own = runtime_of(model)
        if runtime not in (None, own):
            raise ConfigError(
                f"{path} is a {model.format} artifact and runs on {own}, not {runtime}; export the checkpoint to "
                f"that format, or serve the checkpoint with --runtime {runtime}"
            )
    status = str(model.metadata.get("status", "pass"))
    if status.startswith("failed") and not allow_failed:
        raise ConfigError(f"{path} failed its quality gate ({status}); serve it anyway with --allow_failed")
    return model


def _from_checkpoint(path: Path, runtime: str, reference_samples: int) -> ExportedModel:
    if runtime != "eager":
        from export.api import export_checkpoint

        fmt = _FORMAT_OF_RUNTIME[runtime]
        out = Path(tempfile.mkdtemp(prefix="zoo-serve-"))
        report = export_checkpoint(path, out, formats=(fmt,), reference_samples=reference_samples)
        if not report.ok:
            raise ConfigError(f"exporting {path} to {fmt} for serving failed: {report.rows[0]['status']}")
        return load(out / report.rows[0]["file"])
    from export.metadata import build_metadata
    from export.reference import drift_reference
    from export.specs import export_spec
    from zoo.checkpoints import load_checkpoint

    loaded = load_checkpoint(path)
    spec = export_spec(loaded)
    module = spec.module.eval()

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            output = module(*inputs)
        return output[0] if isinstance(output, tuple | list) else output

    metadata = build_metadata(loaded, spec)
    metadata["drift_reference"] = drift_reference(loaded, spec, reference_samples)
    return ExportedModel(path, "eager", metadata, run=run)


def runtime_of(model: ExportedModel) -> str:
    """The runtime ``model`` runs on: its artifact format's, or ``eager`` for a checkpoint."""
    return "eager" if model.format == "eager" else _RUNTIME_OF_FORMAT[model.format]


def model_version(model: ExportedModel) -> str:
    """The first 12 hex digits of the served file's SHA-256: which weights answered, exactly."""
    digest = hashlib.sha256()
    with open(model.path, "rb") as handle:
        for chunk in iter(lambda: handle.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def describe(model: ExportedModel) -> dict[str, Any]:
    """Name, version, format, task kind and labels: what each answer and ``/info`` say about the model."""
    return {
        "name": model.metadata.get("model_name"),
        "version": model_version(model),
        "format": model.format,
        "task": model.metadata.get("task"),
        "task_kind": model.metadata.get("task_kind"),
    }
