"""``export_checkpoint``: checkpoint in, verified artifacts, model card and a result table out."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from export.formats import FORMATS, SUFFIXES, write
from export.metadata import build_metadata, write_model_card
from export.reference import drift_reference
from export.specs import export_spec
from export.verify import Verification, verify_artifact
from zoo.checkpoints import load_checkpoint
from zoo.errors import ConfigError

__all__ = ["ExportReport", "export_checkpoint"]


@dataclass
class ExportReport:
    """What an export produced.

    Attributes:
        rows: One per format: ``format``, ``file``, ``size``, ``max_abs_error``, ``status`` (``pass``,
            ``FAIL: <reason>`` or ``not verified``).
        model_card: Path of ``model_card.md``.
        metadata: The metadata embedded in every artifact.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    model_card: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every artifact was written and, when verified, passed."""
        return all(not str(row["status"]).startswith("FAIL") for row in self.rows)

    def table(self) -> str:
        """The rows as an aligned text table."""
        header = ("format", "file", "size", "max abs error", "result")
        lines = [header]
        for row in self.rows:
            error = "-" if row["max_abs_error"] is None else f"{row['max_abs_error']:.2e}"
            lines.append((row["format"], row["file"], row["size"], error, row["status"]))
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
        return "\n".join(
            "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
        )


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    formats: tuple[str, ...] | list[str] = FORMATS,
    verify: bool = True,
    weights: Literal["ema", "trained"] = "ema",
    task_class: str | None = None,
    reference_samples: int = 1024,
) -> ExportReport:
    """Export a checkpoint's network in ``formats`` to ``out`` and verify each artifact.

    Args:
        checkpoint: A zoo checkpoint; loaded with ``weights_only=True``.
        out: Folder for ``<model>.<suffix>`` files and ``model_card.md`` (created).
        formats: Some of ``"onnx"``, ``"torchscript"``, ``"exported_program"``.
        verify: Compare each artifact with eager PyTorch (on by default).
        weights: ``"ema"`` (default: the EMA average when the run kept one) or ``"trained"``.
        task_class: The task's import path, for checkpoints that do not record it.
        reference_samples: About how many validation inputs' features and confidences become the drift reference
            ``zoo serve`` watches (``metadata["drift_reference"]``; 0 for none, and none when the data is
            not on this machine).

    Returns:
        The report; ``report.ok`` is false when any artifact failed to export or to verify.

    Raises:
        ValueError: For an unknown format, or a checkpoint that cannot be loaded safely (see
            :func:`zoo.checkpoints.load_checkpoint`).
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ConfigError(f"unknown formats {unknown}; choose from {FORMATS}")
    loaded = load_checkpoint(checkpoint, task_class=task_class, weights=weights)
    spec = export_spec(loaded)
    metadata = build_metadata(loaded, spec)
    metadata["drift_reference"] = drift_reference(loaded, spec, reference_samples)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    report = ExportReport(metadata=metadata)
    stem = str(metadata["model_name"]).replace("/", "_")
    for fmt in formats:
        path = folder / f"{stem}{SUFFIXES[fmt]}"
        try:
            write(fmt, spec, metadata, path)
        except Exception as err:  # report every format, then fail as a whole
            report.rows.append(
                _row(fmt, path, Verification(False, None, f"export failed: {type(err).__name__}: {err}"))
            )
            continue
        result = verify_artifact(fmt, path, spec) if verify else None
        report.rows.append(_row(fmt, path, result))
    report.model_card = write_model_card(folder, metadata, report.rows)
    return report


def _row(fmt: str, path: Path, result: Verification | None) -> dict[str, Any]:
    status = "not verified" if result is None else "pass" if result.passed else f"FAIL: {result.message}"
    return {
        "format": fmt,
        "file": path.name,
        "size": file_size(path),
        "max_abs_error": None if result is None else result.max_abs_error,
        "status": status,
    }


def file_size(path: Path) -> str:
    """A file's size as KiB or MiB, or ``-`` when it is missing."""
    if not path.is_file():
        return "-"
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"
