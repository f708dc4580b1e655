"""Write and read the three artifact formats, each carrying the metadata JSON.

* ONNX: ``torch.onnx.export(dynamo=True)`` with dynamic dimensions; metadata in ``metadata_props``; checked
  with ``onnx.checker.check_model(full_check=True)`` and run with onnxruntime.
* TorchScript: ``torch.jit.trace``; metadata as the extra file ``zoo_metadata.json``. TorchScript is
  deprecated upstream in favour of ``torch.export``; zoo keeps it because deployments still load it.
* ExportedProgram: ``torch.export.export`` with dynamic dimensions, saved with ``torch.export.save``;
  metadata as an extra file.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from export.metadata import METADATA_FILE, dumps
from export.specs import ExportSpec

__all__ = ["FORMATS", "SUFFIXES", "read_metadata", "runner", "write"]

FORMATS = ("onnx", "torchscript", "exported_program")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "exported_program": ".pt2"}


def write(fmt: str, spec: ExportSpec, metadata: dict[str, Any], path: Path) -> None:
    """Export ``spec.module`` to ``path`` in format ``fmt`` with ``metadata`` embedded."""
    example = spec.make_inputs(spec.export_sizes)
    text = dumps(metadata)
    with torch.no_grad():
        if fmt == "torchscript":
            with _torchscript_deprecation_known():
                traced = torch.jit.trace(spec.module, example, check_trace=False)
                torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: text})
        elif fmt == "exported_program":
            program = torch.export.export(spec.module, example, dynamic_shapes=_dynamic_shapes(spec))
            torch.export.save(program, path, extra_files={METADATA_FILE: text})
        elif fmt == "onnx":
            _write_onnx(spec, example, text, path)
        else:
            raise ValueError(f"unknown format {fmt!r}; expected some of {FORMATS}")


def _dynamic_shapes(spec: ExportSpec) -> tuple[dict[int, Any], ...]:
    dims: dict[str, Any] = {}
    shapes = []
    for item in spec.inputs:
        entry = {}
        for axis, size in enumerate(item.shape):
            if isinstance(size, str):
                if size not in dims:
                    upper = item.max_sizes.get(size) or spec.program_limits.get(size)
                    dims[size] = torch.export.Dim(size, min=1, max=upper) if upper else torch.export.Dim(size, min=1)
                entry[axis] = dims[size]
        shapes.append(entry)
    return tuple(shapes)


def _write_onnx(spec: ExportSpec, example: tuple[torch.Tensor, ...], text: str, path: Path) -> None:
    import onnx

    program = torch.onnx.export(
        spec.module,
        example,
        dynamic_shapes=_dynamic_shapes(spec),
        input_names=[i.name for i in spec.inputs],
        output_names=spec.output_names,
        dynamo=True,
        verbose=False,
    )
    program.optimize()
    model = program.model_proto
    for key, value in ((METADATA_FILE, text), ("model_name", json.loads(text)["model_name"])):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(model, str(path))  # verification runs onnx.checker (full_check) on the saved file


def runner(fmt: str, path: Path) -> Callable[..., torch.Tensor]:
    """A callable ``(*tensors) -> first output`` for an artifact, loaded as a deployment would load it.

    Args:
        fmt: One of :data:`FORMATS`.
        path: The artifact.
    """
    if fmt == "torchscript":
        with _torchscript_deprecation_known():
            module = torch.jit.load(str(path), map_location="cpu")
        return lambda *inputs: _first(module(*inputs))
    if fmt == "exported_program":
        module = torch.export.load(path).module()
        return lambda *inputs: _first(module(*inputs))
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run(*inputs: torch.Tensor) -> torch.Tensor:
            feeds = {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)}
            return torch.from_numpy(session.run(None, feeds)[0])

        return run
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


@contextmanager
def _torchscript_deprecation_known() -> Iterator[None]:
    """Silence torch's TorchScript deprecation warnings: zoo documents the deprecation and keeps the format."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=FutureWarning)
        yield


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The zoo metadata embedded in an artifact of any of the three formats (chosen by its suffix).

    Raises:
        ValueError: If the file carries no zoo metadata.
    """
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
        text = props.get(METADATA_FILE)
    elif path.suffix == ".pt2":
        extra = {METADATA_FILE: ""}
        torch.export.load(path, extra_files=extra)
        text = extra[METADATA_FILE] or None
    else:
        extra = {METADATA_FILE: ""}
        with _torchscript_deprecation_known():
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        text = extra[METADATA_FILE] or None
    if not text:
        raise ValueError(f"{path} carries no zoo metadata ({METADATA_FILE}); was it exported by zoo?")
    return json.loads(text)
