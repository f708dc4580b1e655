"""int8 in PyTorch with torchao, saved as an ``ExportedProgram`` (``.pt2``) that carries its metadata.

* **Static** (CNNs, ViTs): the PT2E flow. The network is captured with ``torch.export``, observers are inserted
  by the ``X86InductorQuantizer`` (per-channel int8 weights, u8 activations), calibrated on the given batches
  and converted to quantize/dequantize pairs around float ops. Loaded plainly, the program runs those pairs as
  written (reference kernels, not faster than fp32); ``torch.compile`` with Inductor fuses them into int8
  convolutions and matmuls, which is how the benchmark times it.
* **Dynamic** (GPT, BERT-style encoders): ``quantize_`` with ``Int8DynamicActivationInt8WeightConfig`` on every
  ``nn.Linear``: int8 weights, activations quantized per token at each call.

Both need torchao (``pip install "lightning-zoo[compress]"``); the deprecated eager ``torch.ao.quantization``
API is not used.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from export.specs import ExportSpec
from zoo.errors import ConfigError, MissingExtraError

__all__ = ["quantize_program"]


def _torchao() -> Any:
    try:
        import torchao
    except ImportError:
        raise MissingExtraError('the torchao backend needs torchao: pip install "lightning-zoo[compress]"') from None
    return torchao


def quantize_program(
    spec: ExportSpec, method: str, calibration: Sequence[tuple[torch.Tensor, ...]] = ()
) -> tuple[torch.export.ExportedProgram, dict[str, Any]]:
    """The int8 ``ExportedProgram`` of ``spec.module`` (left unchanged), and how it was quantized.

    Args:
        spec: What to export: the fp32 network, its inputs and dynamic sizes.
        method: ``"static"`` (PT2E, calibrated) or ``"dynamic"`` (linear layers).
        calibration: Batches of inputs for static quantization.

    Raises:
        ValueError: For an unknown method, or static quantization without calibration batches.
    """
    from export.formats import dynamic_shapes

    _torchao()
    example = spec.make_inputs(spec.export_sizes)
    shapes = dynamic_shapes(spec)
    module = copy.deepcopy(spec.module).eval()
    if method == "static":
        if not calibration:
            raise ConfigError("static quantization needs calibration batches (calibration_batches >= 1)")
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = x86.X86InductorQuantizer()
        quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
        captured = torch.export.export(module, example, dynamic_shapes=shapes).module()
        prepared = prepare_pt2e(captured, quantizer)
        with torch.no_grad():
            for batch in calibration:
                prepared(*batch)
        module = _drop_unused_tensors(convert_pt2e(prepared))
        details = {"flow": "PT2E", "quantizer": "X86InductorQuantizer", "activations": "uint8", "weights": "int8"}
    elif method == "dynamic":
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(module, Int8DynamicActivationInt8WeightConfig())
        details = {"flow": "quantize_", "config": "Int8DynamicActivationInt8WeightConfig", "weights": "int8"}
    else:
        raise ConfigError(f"method {method!r}: choose static or dynamic")
    with torch.no_grad():
        program = torch.export.export(module, example, dynamic_shapes=shapes)
    return program, {"method": method, **details}


def _drop_unused_tensors(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Delete the parameters and buffers no node reads: the fp32 weights PT2E folded into int8 copies.

    ``convert_pt2e`` leaves the original weights registered beside their int8 versions, and ``torch.export``
    would save both: the program came out larger than the fp32 model (1.6 MiB against 1.2 MiB for
    speedrun_net_tiny; 0.5 MiB without them).
    """
    read = {node.target for node in module.graph.nodes if node.op == "get_attr"}
    names = [name for name, _ in module.named_parameters()] + [name for name, _ in module.named_buffers()]
    for name in names:
        if name not in read:
            owner, _, attribute = name.rpartition(".")
            delattr(module.get_submodule(owner) if owner else module, attribute)
    return module
