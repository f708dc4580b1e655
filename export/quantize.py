"""``quantize_checkpoint``: a checkpoint in, an int8 artifact out, judged by its quality on held-out data.

    from export.quantize import quantize_checkpoint
    report = quantize_checkpoint("runs/.../best.ckpt", out="int8")       # static QDQ for an image classifier
    report.quality.describe()   # 'accuracy fp32 93.10% -> int8 92.95% ... top-1 agreement 98.70%'

The artifact is an export artifact like the others (``export.load`` runs it, ``zoo serve`` serves it): its
metadata holds the inference signature plus how it was quantized (``compression``: method, data types,
calibration batches and the fingerprint of their bytes, excluded nodes) and the verdict (``quality``: both
figures, the change, the limit, ``passed``). An artifact whose drop exceeds the limit is kept, marked
``"status": "failed: ..."``, so that it can be inspected; ``report.ok`` is false and ``zoo quantize`` exits 1.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from export.metadata import METADATA_FILE, build_metadata, dumps, write_model_card
from export.quality import Quality, measure_quality
from export.reference import drift_reference
from export.specs import export_spec
from zoo.errors import ConfigError, UsageError

__all__ = ["BACKENDS", "METHODS", "QuantizeReport", "default_method", "quantize_checkpoint"]

METHODS = ("auto", "static", "dynamic")
BACKENDS = ("onnxruntime", "torchao")


@dataclass
class QuantizeReport:
    """What a quantization produced.

    Attributes:
        artifact: The int8 file (``<model>.int8.onnx`` or ``<model>.int8.pt2``).
        metadata: The metadata embedded in it, with ``compression``, ``quality`` and ``status``.
        quality: The artifact against fp32 on held-out data.
        row: The artifact's row for ``model_card.md`` and ``zoo export``'s table.
        model_card: ``model_card.md``, when one was written.
    """

    artifact: Path
    metadata: dict[str, Any]
    quality: Quality
    row: dict[str, Any] = field(default_factory=dict)
    model_card: Path | None = None

    @property
    def ok(self) -> bool:
        """The quality is within the limit."""
        return self.quality.passed


def default_method(task: Any) -> str:
    """``static`` for image classifiers, ``dynamic`` for text classifiers and language models.

    Raises:
        UsageError: For a task int8 quantization does not apply to, naming the methods that apply to which tasks.
    """
    from zoo.tasks.classification import ImageClassifier, TextClassifier
    from zoo.tasks.language_modeling import LanguageModel

    if isinstance(task, ImageClassifier):
        return "static"
    if isinstance(task, TextClassifier | LanguageModel):
        return "dynamic"
    raise UsageError(
        f"int8 quantization does not apply to a {type(task).__name__}: zoo quantizes image classifiers (static or "
        "dynamic), text classifiers and language models (dynamic); diffusion and graph models are left in float"
    )


def _check_method(task: Any, method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"method {method!r}: choose from {', '.join(METHODS)}")
    natural = default_method(task)
    if method == "auto":
        return natural
    if method == "static" and natural == "dynamic":
        raise UsageError(
            f"static int8 needs calibrated activation ranges of image inputs; a {type(task).__name__} takes tokens: "
            "use --method dynamic"
        )
    return method


def quantize_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    method: str = "auto",
    backend: str = "onnxruntime",
    calibration_batches: int = 8,
    calibrate_method: str = "minmax",
    config: str | os.PathLike[str] | None = None,
    data_overrides: Sequence[str] = (),
    split: str = "val",
    max_drop: float = 1.0,
    max_perplexity_rise: float = 2.0,
    limit_batches: int | None = None,
    weights: str = "ema",
    exclude: Sequence[str] = (),
    calibration: Sequence[tuple[torch.Tensor, ...]] | None = None,
    write_card: bool = True,
) -> QuantizeReport:
    """Quantize a checkpoint's network to int8, write it to ``out`` and judge it against fp32.

    Args:
        checkpoint: A zoo checkpoint.
        out: Folder for the artifact and ``model_card.md`` (created).
        method: ``"auto"`` (static for image classifiers, dynamic otherwise), ``"static"`` or ``"dynamic"``.
        backend: ``"onnxruntime"`` (an ``.onnx`` file) or ``"torchao"`` (an ``ExportedProgram``, ``.pt2``).
        calibration_batches: Training batches to calibrate static quantization on.
        calibrate_method: ``"minmax"``, ``"entropy"`` or ``"percentile"`` (onnxruntime's static calibrators).
        config: The recipe whose data is used (default: the one the checkpoint recorded).
        data_overrides: ``--data.init_args.batch_size 256``-style changes to its data section.
        split: The split quality is measured on: ``"val"`` (default) or ``"test"``.
        max_drop: Accuracy points a classifier may lose before the artifact fails.
        max_perplexity_rise: Percent a language model's perplexity may rise before it fails.
        limit_batches: Measure quality on the first N batches only.
        weights: ``"ema"`` (default, when the run kept them) or ``"trained"``.
        exclude: ONNX node names to keep in float (onnxruntime only).
        calibration: Input batches to calibrate on instead of the training split (in the artifact's input order).
        write_card: Write ``model_card.md`` (``zoo export --quantize`` writes one card for all artifacts).

    Returns:
        The report; ``report.ok`` is false when the quality check failed (the artifact is kept, marked failed).

    Raises:
        ValueError: For a bad argument (naming it and its value) or a checkpoint that cannot be loaded.
        UsageError: For a task or method quantization does not apply to.
    """
    from zoo.checkpoints import load_checkpoint
    from zoo.evaluation.predictions import build_data

    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r}: choose from {', '.join(BACKENDS)}")
    if calibration_batches < 1:
        raise ConfigError(f"calibration_batches must be at least 1, got {calibration_batches}")
    if max_drop < 0 or max_perplexity_rise < 0:
        raise ConfigError(f"max_drop ({max_drop}) and max_perplexity_rise ({max_perplexity_rise}) must be >= 0")
    if split not in ("val", "test"):
        raise ConfigError(f"split {split!r}: choose val or test")
    if exclude and backend != "onnxruntime":
        raise ConfigError("exclude names ONNX nodes; it applies to the onnxruntime backend only")
    loaded = load_checkpoint(checkpoint, weights=weights)  # type: ignore[arg-type]
    method = _check_method(loaded.task, method)
    loaded.task.eval()
    spec = export_spec(loaded)
    metadata = build_metadata(loaded, spec)
    data = build_data(config, loaded, list(data_overrides))
    metadata["drift_reference"] = drift_reference(loaded, spec, data=data)
    compression: dict[str, Any] = {"dtype": "int8", "backend": backend}
    if method == "static":
        calibration, compression["calibration"] = _calibration(loaded.task, data, calibration, calibration_batches)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = str(metadata["model_name"]).replace("/", "_")
    if backend == "onnxruntime":
        artifact, fmt = folder / f"{stem}.int8.onnx", "onnx"
        compression |= _onnxruntime(spec, metadata, artifact, method, calibration or (), calibrate_method, exclude)
        save = _onnx_saver(artifact)
    else:
        from export.torchao_quantize import quantize_program

        artifact, fmt = folder / f"{stem}.int8.pt2", "exported_program"
        program, details = quantize_program(spec, method, calibration or ())
        compression |= details
        save = _program_saver(program, artifact)
    metadata["compression"] = compression
    save(metadata)
    from export.formats import runner

    quality = measure_quality(loaded, data, runner(fmt, artifact), split, limit_batches, max_drop, max_perplexity_rise)
    metadata["quality"] = quality.as_dict()
    metadata["status"] = "pass" if quality.passed else f"failed: {quality.describe()}"
    save(metadata)
    report = QuantizeReport(artifact, metadata, quality, _row(fmt, artifact, quality))
    if write_card:
        report.model_card = write_model_card(folder, metadata, [report.row])
    return report


def _calibration(
    task: Any, data: Any, given: Sequence[tuple[torch.Tensor, ...]] | None, batches: int
) -> tuple[list[tuple[torch.Tensor, ...]], dict[str, Any]]:
    """The calibration batches (given, or captured from the training split) and their record for the metadata."""
    from export.calibration import capture_calibration_inputs, fingerprint

    inputs = list(given) if given is not None else capture_calibration_inputs(task, data, batches)
    if not inputs:
        raise ConfigError("calibration got no batches")
    return inputs, {
        "source": "given" if given is not None else f"train split of {type(data).__name__}",
        "batches": len(inputs),
        "samples": sum(int(batch[0].shape[0]) for batch in inputs),
        "fingerprint": fingerprint(inputs),
    }


def _onnxruntime(
    spec: Any, metadata: dict[str, Any], artifact: Path, method: str, calibration: Sequence[tuple[torch.Tensor, ...]],
    calibrate_method: str, exclude: Sequence[str],
) -> dict[str, Any]:  # fmt: skip
    from export.formats import write
    from export.ort_quantize import quantize_onnx

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        write("onnx", spec, metadata, fp32)
        return quantize_onnx(
            fp32, artifact, method, [i.name for i in spec.inputs], calibration, calibrate_method, exclude
        )


def _onnx_saver(artifact: Path) -> Any:
    from export.formats import rewrite_onnx_metadata

    return lambda metadata: rewrite_onnx_metadata(artifact, metadata)


def _program_saver(program: Any, artifact: Path) -> Any:
    return lambda metadata: torch.export.save(program, artifact, extra_files={METADATA_FILE: dumps(metadata)})


def _row(fmt: str, artifact: Path, quality: Quality) -> dict[str, Any]:
    from export.api import file_size

    verdict = "pass" if quality.passed else "FAIL"
    return {
        "format": f"{fmt} int8",
        "file": artifact.name,
        "size": file_size(artifact),
        "max_abs_error": None,
        "status": f"{verdict}: {quality.describe()}",
    }
