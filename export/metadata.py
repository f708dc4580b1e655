"""What every artifact says about itself, and the model card written beside the artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from export.checkpoint import LoadedCheckpoint
from export.specs import ExportSpec

__all__ = ["METADATA_FILE", "build_metadata", "write_model_card"]

METADATA_FILE = "zoo_metadata.json"  # TorchScript/ExportedProgram extra file; ONNX metadata_props key


def build_metadata(loaded: LoadedCheckpoint, spec: ExportSpec) -> dict[str, Any]:
    """Model, version, inputs, preprocessing, labels, recipe and metrics, as plain JSON-able data."""
    from zoo import __version__

    task = loaded.task
    recorded = loaded.metadata
    data = dict(recorded.get("data") or {})
    preprocessing: dict[str, Any] = {}
    for key in ("mean", "std", "image_size", "in_chans", "max_length"):
        if key in data:
            preprocessing[key] = data[key]
    if "tokenizer" in data:
        preprocessing["tokenizer"] = data["tokenizer"]
    elif getattr(task, "tokenizer", None) is not None and hasattr(task.tokenizer, "to_config"):
        preprocessing["tokenizer"] = {"kind": "zoo", "config": task.tokenizer.to_config()}
    if loaded.task_class.endswith("DiffusionModel"):
        preprocessing["output"] = "prediction in the [-1, 1] image space of the noise schedule below"
        preprocessing["noise_schedule"] = {k: _plain(v) for k, v in dict(task.noise_scheduler.config).items()}
    return {
        "model_name": getattr(task, "backbone_name", type(task.backbone).__name__),
        "task": loaded.task_class,
        "zoo_version": __version__,
        "checkpoint": loaded.path.name,
        "weights": loaded.weights,
        "inputs": [i.to_dict() for i in spec.inputs],
        "outputs": spec.output_names,
        "exported_program_limits": {"max": spec.program_limits, "reason": spec.program_limits_reason}
        if spec.program_limits
        else None,
        "tolerance": {"rtol": spec.rtol, "atol": spec.atol, "reason": spec.tolerance_reason},
        "preprocessing": preprocessing,
        "labels": data.get("class_names"),
        "recipe": recorded.get("recipe"),
        "metrics": recorded.get("metrics") or {},
        "best": recorded.get("best"),
        "hparams": {k: _plain(v) for k, v in loaded.hparams.items()},
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def write_model_card(out: Path, metadata: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """Write ``model_card.md``: what the model is, what it expects, how well it did, and what was exported."""
    lines = [f"# {metadata['model_name']}", ""]
    lines += [f"Task `{metadata['task']}`, exported by zoo {metadata['zoo_version']} from `{metadata['checkpoint']}`"
              f" ({metadata['weights']} weights).", ""]  # fmt: skip
    lines += ["## Inputs", "", "| name | shape | dtype |", "|---|---|---|"]
    for spec in metadata["inputs"]:
        shape = " x ".join(str(d) for d in spec["shape"])
        limits = ", ".join(f"{k} <= {v}" for k, v in spec["max"].items())
        lines.append(f"| `{spec['name']}` | {shape}{f' ({limits})' if limits else ''} | {spec['dtype']} |")
    lines += ["", f"Outputs: {', '.join(f'`{o}`' for o in metadata['outputs'])}.", ""]
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
    lines += ["## Artifacts", "", "| format | file | size | max abs error | verified |", "|---|---|---|---|---|"]
    for row in rows:
        error = "-" if row["max_abs_error"] is None else f"{row['max_abs_error']:.2e}"
        lines.append(f"| {row['format']} | `{row['file']}` | {row['size']} | {error} | {row['status']} |")
    path = out / "model_card.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def dumps(metadata: dict[str, Any]) -> str:
    """The metadata as the JSON text embedded in every artifact."""
    return json.dumps(metadata, sort_keys=True)
