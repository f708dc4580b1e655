"""Write and read the three artifact formats, each carrying the metadata JSON.

* ONNX: ``torch.onnx.export(dynamo=True)`` with dynamic dimensions; metadata in ``metadata_props``, beside the
  CRC-32 of every weight (``zoo_weights_crc32``); checked with ``onnx.checker.check_model(full_check=True)``
  and run with onnxruntime.
* TorchScript: ``torch.jit.trace``; metadata as the extra file ``zoo_metadata.json``. TorchScript is
  deprecated upstream in favour of ``torch.export``; zoo keeps it because deployments still load it.
* ExportedProgram: ``torch.export.export`` with dynamic dimensions, saved with ``torch.export.save``;
  metadata as an extra file.
"""

from __future__ import annotations

import json
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from export.metadata import METADATA_FILE, dumps
from export.specs import ExportSpec
from zoo.checkpoints import damaged_member
from zoo.errors import CheckpointError, ConfigError, MissingExtraError

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "check_artifact",
    "dynamic_shapes",
    "read_metadata",
    "rewrite_onnx_metadata",
    "runner",
    "write",
]

FORMATS = ("onnx", "torchscript", "exported_program")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "exported_program": ".pt2"}
WEIGHTS_CRC_KEY = "zoo_weights_crc32"  # ONNX metadata_props key: {initializer name: CRC-32 of its bytes}


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
            program = torch.export.export(spec.module, example, dynamic_shapes=dynamic_shapes(spec))
            torch.export.save(program, path, extra_files={METADATA_FILE: text})
        elif fmt == "onnx":
            _write_onnx(spec, example, text, path)
        else:
            raise ConfigError(f"unknown format {fmt!r}; expected some of {FORMATS}")


def dynamic_shapes(spec: ExportSpec) -> tuple[dict[int, Any], ...]:
    """``torch.export`` dimensions for the spec's symbolic sizes, one shared ``Dim`` per size name."""
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
        dynamic_shapes=dynamic_shapes(spec),
        input_names=[i.name for i in spec.inputs],
        output_names=spec.output_names,
        dynamo=True,
        verbose=False,
    )
    program.optimize()
    model = program.model_proto
    _embed_onnx_metadata(model, text)
    onnx.save_model(model, str(path))  # verification runs onnx.checker (full_check) on the saved file


def _embed_onnx_metadata(model: Any, text: str) -> None:
    """Put zoo's metadata and the CRC-32 of every weight into ``model.metadata_props``, replacing earlier ones."""
    keys = (METADATA_FILE, "model_name", WEIGHTS_CRC_KEY)
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in keys]
    crcs = json.dumps(_initializer_crcs(model), sort_keys=True)
    del model.metadata_props[:]
    for key, value in (
        *kept,
        (METADATA_FILE, text),
        ("model_name", json.loads(text)["model_name"]),
        (WEIGHTS_CRC_KEY, crcs),
    ):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def rewrite_onnx_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Replace the zoo metadata of the ONNX file at ``path`` (and its weights' CRC-32s, for changed weights).

    Quantization rewrites the weights and learns about the artifact's quality after it is written; both end up
    in the file this way.
    """
    import onnx

    model = _load_onnx(path)
    _embed_onnx_metadata(model, dumps(metadata))
    onnx.save_model(model, str(path))


def _load_onnx(path: Path) -> Any:
    """The ONNX model proto at ``path`` (weights in external files not read), or an error naming the file."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends: a damaged or foreign file
        raise CheckpointError(
            f"exported model {path} cannot be read as ONNX ({type(err).__name__}: {err}); export the checkpoint again"
        ) from None


def _initializer_crcs(model: Any) -> dict[str, int]:
    """CRC-32 of each weight stored in an ONNX model (weights kept in external files are left out)."""
    from onnx import TensorProto, numpy_helper

    return {
        init.name: zlib.crc32(numpy_helper.to_array(init).tobytes())
        for init in model.graph.initializer
        if init.data_location != TensorProto.EXTERNAL
    }


def check_artifact(path: str | Path) -> None:
    """Refuse an artifact whose weights changed after export, naming what changed.

    TorchScript files and ExportedPrograms are zip archives with a CRC-32 per member; ONNX files carry the
    CRC-32 of every weight in their metadata (artifacts exported before zoo recorded them are not checked).

    Raises:
        ValueError: Naming the file and the damaged member or weights.
    """
    path = Path(path)
    if path.suffix == ".onnx":
        _check_onnx_weights(_load_onnx(path), path)
    else:
        _check_archive(path)


def _check_archive(path: Path) -> None:
    damaged = damaged_member(path)
    if damaged is not None:
        raise CheckpointError(
            f"exported model {path} is damaged: the bytes of its member {damaged!r} no longer match the CRC-32 "
            "written with them; export the checkpoint again"
        )


def _check_onnx_weights(model: Any, path: Path) -> None:
    stored = next((p.value for p in model.metadata_props if p.key == WEIGHTS_CRC_KEY), None)
    if stored is None:
        return
    expected, actual = json.loads(stored), _initializer_crcs(model)
    changed = sorted(name for name in expected if actual.get(name) != expected[name])
    if changed:
        shown = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
        raise CheckpointError(
            f"exported model {path} is damaged: {len(changed)} weight(s) ({shown}) differ from those recorded at "
            "export; export the checkpoint again"
        )


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
        module = load_program(path).module()
        return lambda *inputs: _first(module(*inputs))
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run(*inputs: torch.Tensor) -> torch.Tensor:
            feeds = {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)}
            return torch.from_numpy(session.run(None, feeds)[0])

        return run
    raise ConfigError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def load_program(path: Path, extra_files: dict[str, str] | None = None) -> torch.export.ExportedProgram:
    """``torch.export.load``, importing torchao first when the program uses its int8 operators.

    A program quantized by torchao names operators that exist only once torchao is imported. Importing it for
    every program would cost seconds, so the archive's serialized graph is searched for those operators first.

    Raises:
        ImportError: When the program needs torchao and it is not installed.
    """
    if _uses_quantized_operators(path):
        try:
            import torchao  # noqa: F401  registers the quantized operators
        except ImportError:
            raise MissingExtraError(
                f'{path} was quantized with torchao; to load it: pip install "lightning-zoo[compress]"'
            ) from None
    return torch.export.load(path, extra_files=extra_files)


_QUANTIZED_OPERATORS = (b"quantized_decomposed", b"torchao")


def _uses_quantized_operators(path: Path) -> bool:
    """Whether the serialized graphs in the ``.pt2`` archive at ``path`` name torchao's or PT2E's operators."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(
                marker in archive.read(member)
                for member in archive.namelist()
                if member.endswith(".json") and "/models/" in member
                for marker in _QUANTIZED_OPERATORS
            )
    except (OSError, zipfile.BadZipFile, KeyError):
        return False  # torch.export.load reports what is wrong with the file


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

    The artifact is checked on the way (:func:`check_artifact`), from the same read of the file.

    Raises:
        ValueError: If the file carries no zoo metadata, or its weights changed after export.
    """
    path = Path(path)
    if path.suffix == ".onnx":
        model = _load_onnx(path)
        _check_onnx_weights(model, path)
        props = {p.key: p.value for p in model.metadata_props}
        text = props.get(METADATA_FILE)
    elif path.suffix == ".pt2":
        _check_archive(path)
        extra = {METADATA_FILE: ""}
        load_program(path, extra)
        text = extra[METADATA_FILE] or None
    else:
        _check_archive(path)
        extra = {METADATA_FILE: ""}
        with _torchscript_deprecation_known():
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        text = extra[METADATA_FILE] or None
    if not text:
        raise CheckpointError(f"{path} carries no zoo metadata ({METADATA_FILE}); was it exported by zoo?")
    return json.loads(text)
