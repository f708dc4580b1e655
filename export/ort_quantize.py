"""int8 ONNX models with onnxruntime's quantization tools: static QDQ for images, dynamic for linear layers.

* **Static** (CNNs, ViTs): ``quant_pre_process`` (shape inference, constant folding, BatchNorm folding), then
  ``quantize_static`` in QDQ format with per-channel weights, activation ranges calibrated on the given batches
  (MinMax, entropy or percentile). Activations are unsigned and weights signed (U8S8) by default: on x86 the
  VNNI instruction multiplies u8 by s8, and onnxruntime fuses U8S8 QDQ pairs into ``QLinearConv``/``QGemm``;
  with signed activations it left most convolutions in float on this machine (3.4x slower on resnet18_cifar).
* **Dynamic** (GPT, BERT-style encoders): ``quantize_dynamic`` of ``MatMul`` and ``Gemm`` only, with the
  activation scale computed per call. Convolutions are never dynamically quantized: onnxruntime has no CPU
  kernel for the ``ConvInteger`` it would produce.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ConfigError

__all__ = ["CALIBRATORS", "quantize_onnx"]

CALIBRATORS = ("minmax", "entropy", "percentile")
LINEAR_OPS = ("MatMul", "Gemm")


def quantize_onnx(
    source: Path,
    dest: Path,
    method: str,
    input_names: Sequence[str],
    calibration: Sequence[tuple[torch.Tensor, ...]] = (),
    calibrate_method: str = "minmax",
    exclude: Sequence[str] = (),
    activations: str = "uint8",
) -> dict[str, Any]:
    """Write the int8 version of the fp32 ONNX model ``source`` to ``dest``.

    Args:
        source: An fp32 model written by ``zoo export``.
        dest: Where the int8 model goes.
        method: ``"static"`` or ``"dynamic"``.
        input_names: The model's inputs, in the order of each calibration tuple.
        calibration: Batches of inputs (static only).
        calibrate_method: ``"minmax"``, ``"entropy"`` or ``"percentile"`` (static only).
        exclude: Node names to keep in float.
        activations: ``"uint8"`` (default, U8S8) or ``"int8"`` (S8S8), static only.

    Returns:
        How it was quantized: method, format, data types, calibration method, excluded and quantized nodes.

    Raises:
        ValueError: For an unknown method or calibrator, or a node name to exclude that the model lacks.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibrate_method not in CALIBRATORS:
        raise ConfigError(f"calibration method {calibrate_method!r}: choose from {', '.join(CALIBRATORS)}")
    if activations not in ("uint8", "int8"):
        raise ConfigError(f"activations {activations!r}: choose uint8 (U8S8, fastest on x86) or int8")
    pre = dest.with_name(dest.stem + ".pre.onnx")
    quant_pre_process(str(source), str(pre), skip_symbolic_shape=method == "dynamic")
    model = onnx.load(str(pre))
    nodes = {node.name for node in model.graph.node}
    unknown = sorted(set(exclude) - nodes)
    if unknown:
        raise ConfigError(f"--exclude names nodes {unknown} that {source.name} does not have (it has {len(nodes)})")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs each tensor it calibrates and each BatchNorm it leaves
    try:
        if method == "static":
            details = _static(pre, dest, input_names, calibration, calibrate_method, list(exclude), activations)
        elif method == "dynamic":
            quantize_dynamic(
                str(pre), str(dest), weight_type=QuantType.QInt8, op_types_to_quantize=list(LINEAR_OPS),
                nodes_to_exclude=list(exclude),
            )  # fmt: skip
            details = {"format": "QOperator (dynamic)", "activations": "uint8, scale per call", "weights": "int8"}
        else:
            raise ConfigError(f"method {method!r}: choose static or dynamic")
    finally:
        root.setLevel(level)
        pre.unlink(missing_ok=True)
    quantized = onnx.load(str(dest), load_external_data=False)
    integer_ops = sorted(
        {n.op_type for n in quantized.graph.node if n.op_type in _INTEGER_OPS}
        | ({"QDQ"} if any(n.op_type == "QuantizeLinear" for n in quantized.graph.node) else set())
    )
    return {
        "method": method,
        **details,
        "excluded_nodes": sorted(exclude),
        "quantized_op_types": integer_ops,
        "float_nodes": len(nodes),
    }


_INTEGER_OPS = {"QLinearConv", "QLinearMatMul", "MatMulInteger", "DynamicQuantizeLinear", "QGemm", "ConvInteger"}


def _static(
    pre: Path, dest: Path, input_names: Sequence[str], calibration: Sequence[tuple[torch.Tensor, ...]],
    calibrate_method: str, exclude: list[str], activations: str,
) -> dict[str, Any]:  # fmt: skip
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not calibration:
        raise ConfigError("static quantization needs calibration batches (calibration_batches >= 1)")
    feeds = [{name: tensor.numpy() for name, tensor in zip(input_names, batch, strict=True)} for batch in calibration]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    calibrator = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[calibrate_method]
    quantize_static(
        str(pre), str(dest), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
        weight_type=QuantType.QInt8, calibrate_method=calibrator, nodes_to_exclude=exclude,
    )  # fmt: skip
    return {
        "format": "QDQ",
        "per_channel": True,
        "activations": activations,
        "weights": "int8",
        "calibration_method": calibrate_method,
    }
