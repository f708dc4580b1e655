"""What every artifact says about itself, and the model card written beside the artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from export.specs import ExportSpec
from zoo.checkpoints import LoadedCheckpoint
from zoo.tasks.signature import json_ready

__all__ = ["METADATA_FILE", "build_metadata", "compression_section", "write_model_card"]

METADATA_FILE = "zoo_metadata.json"  # TorchScript/ExportedProgram extra file; ONNX metadata_props key


def build_metadata(loaded: LoadedCheckpoint, spec: ExportSpec) -> dict[str, Any]:
    """Model, version, the inference signature, recipe and metrics, as plain JSON-able data.

    The signature's parts (``task_kind``, ``inputs``, ``outputs``, ``preprocessing``, ``labels``, ``sizes``) sit
    at the top level, where artifacts of zoo 0.1 kept their inputs, preprocessing and labels; ``task`` is the
    task's import path.
    """
    from zoo import __version__

    recorded = loaded.metadata
    signature = spec.signature
    return {
        "model_name": loaded.task.backbone_name,
        "task": loaded.task_class,
        "zoo_version": __version__,
        "checkpoint": loaded.path.name,
        "weights": loaded.weights,
        **signature.to_dict(),
        "exported_program_limits": {"max": dict(signature.limits), "reason": signature.limits_reason}
        if signature.limits
        else None,
        "tolerance": {"rtol": spec.rtol, "atol": spec.atol, "reason": spec.tolerance_reason},
        "recipe": None if recorded.recipe is None else vars(recorded.recipe).copy(),
        "metrics": dict(recorded.metrics),
        "best": None if recorded.best is None else vars(recorded.best).copy(),
        "calibration": None if recorded.calibration is None else dict(recorded.calibration),
        "pruning": None if loaded.pruning is None else dict(loaded.pruning),
        "hparams": json_ready(loaded.hparams),
    }


def write_model_card(out: Path, metadata: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """Write ``model_card.md``: what the model is, what it expects, how well it did, and what was exported."""
    lines = [f"# {metadata['model_name']}", ""]
    origin = f"from `{metadata['checkpoint']}` ({metadata['weights']} weights)"
    lines += [
        f"Task `{metadata['task']}` ({metadata['task_kind']}), exported by zoo {metadata['zoo_version']} {origin}.",
        "",
    ]
    lines += _tensor_table("Inputs", metadata["inputs"])
    lines += _tensor_table("Outputs", metadata["outputs"])
    pre = {k: v for k, v in metadata["preprocessing"].items() if k not in ("tokenizer", "noise_schedule")}
    if pre:
        lines += ["## Preprocessing", "", *(f"* {k}: {v}" for k, v in pre.items()), ""]
    if "tokenizer" in metadata["preprocessing"]:
        lines += [f"Tokenizer: {metadata['preprocessing']['tokenizer']['kind']} (embedded in the artifacts).", ""]
    if metadata.get("labels"):
        lines += ["## Labels", "", ", ".join(f"{i}: {n}" for i, n in enumerate(metadata["labels"])), ""]
    if metadata["metrics"]:
        lines += ["## Metrics at the checkpoint", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in sorted(metadata["metrics"].items())] + [""]
    recipe = metadata.get("recipe")
    if recipe:
        lines += ["## Recipe", "", f"`{recipe['path']}` (resolved, SHA-256 `{recipe['sha256'][:16]}...`):", "",
                  "```yaml", recipe["text"].rstrip(), "```", ""]  # fmt: skip
    pruning = metadata.get("pruning")
    if pruning:
        removed = " (pruned channels removed from the exported network)" if pruning["method"] == "structured" else ""
        lines += [f"Pruned: {pruning['method']}, sparsity {pruning['sparsity']:.2f}{removed}.", ""]
    lines += compression_section(metadata)
    lines += ["## Artifacts", "", "| format | file | size | max abs error | verified |", "|---|---|---|---|---|"]
    for row in rows:
        error = "-" if row["max_abs_error"] is None else f"{row['max_abs_error']:.2e}"
        lines.append(f"| {row['format']} | `{row['file']}` | {row['size']} | {error} | {row['status']} |")
    path = out / "model_card.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def compression_section(metadata: dict[str, Any]) -> list[str]:
    """Markdown lines on how an int8 artifact was made and how it compares with fp32 (none for fp32 metadata)."""
    compression = metadata.get("compression")
    if not compression:
        return []
    how = {k: v for k, v in compression.items() if k != "calibration"}
    lines = ["## Quantization", "", *(f"* {k}: {v}" for k, v in how.items())]
    if compression.get("calibration"):
        calibration = compression["calibration"]
        lines.append(
            f"* calibration: {calibration['batches']} batches ({calibration['samples']} samples) of the "
            f"{calibration['source']}, fingerprint `{calibration['fingerprint']}`"
        )
    quality = metadata.get("quality")
    if quality:
        lines += [
            "",
            f"Quality against fp32: **{metadata.get('status', '-')}**",
            "",
            "| | fp32 | int8 |",
            "|---|---|---|",
        ]
        lines.append(
            f"| {quality['metric']} ({quality['split']}) | {quality['reference']:.4g} | {quality['compressed']:.4g} |"
        )
        if quality.get("agreement") is not None:
            lines.append(f"| top-1 agreement with fp32 | | {quality['agreement']:.2f}% |")
    return [*lines, ""]


def _tensor_table(title: str, specs: list[dict[str, Any]]) -> list[str]:
    lines = [f"## {title}", "", "| name | shape | dtype | meaning |", "|---|---|---|---|"]
    for spec in specs:
        shape = " x ".join(str(d) for d in spec["shape"])
        limits = ", ".join(f"{k} <= {v}" for k, v in spec["max"].items())
        shape += f" ({limits})" if limits else ""
        lines.append(f"| `{spec['name']}` | {shape} | {spec['dtype']} | {spec['description']} |")
    return [*lines, ""]


def dumps(metadata: dict[str, Any]) -> str:
    """The metadata as the JSON text embedded in every artifact."""
    return json.dumps(metadata, sort_keys=True)
