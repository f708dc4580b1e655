"""What to export for each task: the network, named inputs with their dynamic dimensions, and test inputs.

Each task exports its network alone (no loss, no metrics): images -> logits, token ids -> logits, a noisy
image and a timestep -> the predicted noise, node features and edges -> logits. Verification feeds inputs
whose dynamic dimensions differ from those used at export, so an artifact that baked a shape in fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from export.checkpoint import LoadedCheckpoint

__all__ = ["ExportSpec", "InputSpec", "export_spec"]


@dataclass(frozen=True)
class InputSpec:
    """One named input: its shape with symbolic dimensions (``"batch"``, ``"tokens"``, ...) and dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    max_sizes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:  # noqa: D102
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "max": dict(self.max_sizes)}


@dataclass
class ExportSpec:
    """How one task is exported and checked.

    Attributes:
        module: The network to export, in eval mode; its ``forward`` takes the inputs in order.
        inputs: The named inputs.
        output_names: Names of the outputs.
        make_inputs: ``sizes -> tensors``: inputs for the dynamic sizes given (e.g. ``{"batch": 3}``).
        export_sizes: The sizes the artifact is traced or exported with.
        check_sizes: Other sizes it is verified on.
        rtol, atol: Verification tolerances.
        tolerance_reason: Why a model needs more than rtol 1e-3, atol 1e-5 (empty when it does not).
        program_limits: Upper bounds ``torch.export`` needs on dynamic sizes beyond the model's own (the
            ExportedProgram checks them at run time; ONNX graphs do not keep them).
        program_limits_reason: Why those bounds exist.
    """

    module: nn.Module
    inputs: list[InputSpec]
    output_names: list[str]
    make_inputs: Callable[[dict[str, int]], tuple[torch.Tensor, ...]]
    export_sizes: dict[str, int]
    check_sizes: list[dict[str, int]]
    rtol: float = 1e-3
    atol: float = 1e-5
    tolerance_reason: str = ""
    program_limits: dict[str, int] = field(default_factory=dict)
    program_limits_reason: str = ""


def export_spec(loaded: LoadedCheckpoint) -> ExportSpec:
    """The :class:`ExportSpec` of a loaded checkpoint's task.

    Raises:
        ValueError: For a task export does not handle.
    """
    name = loaded.task_class.rpartition(".")[2]
    builders = {
        "ImageClassifier": _image_classifier,
        "LanguageModel": _language_model,
        "DiffusionModel": _diffusion_model,
        "TextClassifier": _text_classifier,
        "NodeClassifier": _node_classifier,
        "GraphClassifier": _graph_classifier,
    }
    if name not in builders:
        raise ValueError(f"export does not handle {loaded.task_class} yet; it handles {sorted(builders)}")
    return builders[name](loaded.task)


def _generator(sizes: dict[str, int]) -> torch.Generator:
    return torch.Generator().manual_seed(sum(v * 1_000**i for i, v in enumerate(sizes.values())))


def _image_classifier(task: Any) -> ExportSpec:
    channels, side = task.in_chans, _image_side(task)

    def make(sizes: dict[str, int]) -> tuple[torch.Tensor, ...]:
        return (torch.randn(sizes["batch"], channels, side, side, generator=_generator(sizes)),)

    return ExportSpec(
        module=task.backbone.eval(),
        inputs=[InputSpec("images", ("batch", channels, side, side), "float32")],
        output_names=["logits"],
        make_inputs=make,
        export_sizes={"batch": 2},
        check_sizes=[{"batch": 1}, {"batch": 5}],
    )


def _image_side(task: Any) -> int:
    from zoo.registry import model_info

    name = getattr(task, "backbone_name", None)
    try:
        return int(model_info(name).input_spec.shape[-1]) if isinstance(name, str) else 32
    except Exception:  # a module given directly, or a timm model without a zoo entry
        return int(getattr(task.backbone, "default_cfg", {}).get("input_size", (3, 32, 32))[-1])


def _language_model(task: Any) -> ExportSpec:
    vocab, block = task.vocab_size, task.block_size

    def make(sizes: dict[str, int]) -> tuple[torch.Tensor, ...]:
        shape = (sizes["batch"], sizes["tokens"])
        return (torch.randint(0, vocab, shape, generator=_generator(sizes)),)

    return ExportSpec(
        module=task.backbone.eval(),
        inputs=[InputSpec("input_ids", ("batch", "tokens"), "int64", {"tokens": block})],
        output_names=["logits"],
        make_inputs=make,
        export_sizes={"batch": 2, "tokens": min(16, block - 1)},
        check_sizes=[{"batch": 1, "tokens": min(5, block)}, {"batch": 3, "tokens": block}],
    )


class _UnconditionalDenoiser(nn.Module):
    """The denoiser with the fixed argument list ``(noisy_images, timesteps)`` that export needs."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, noisy_images: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self.backbone(noisy_images, timesteps)


class _ConditionalDenoiser(_UnconditionalDenoiser):
    """The denoiser with the fixed argument list ``(noisy_images, timesteps, class_labels)``."""

    def forward(self, noisy_images: torch.Tensor, timesteps: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.backbone(noisy_images, timesteps, class_labels)


def _diffusion_model(task: Any) -> ExportSpec:
    channels, side = task.in_chans, task.image_size
    conditional = task.conditional
    steps = int(task.noise_scheduler.config.num_train_timesteps)

    def make(sizes: dict[str, int]) -> tuple[torch.Tensor, ...]:
        generator = _generator(sizes)
        batch = sizes["batch"]
        images = torch.randn(batch, channels, side, side, generator=generator)
        timesteps = torch.randint(0, steps, (batch,), generator=generator)
        if not conditional:
            return images, timesteps
        return images, timesteps, torch.randint(0, task.num_classes + 1, (batch,), generator=generator)

    inputs = [
        InputSpec("noisy_images", ("batch", channels, side, side), "float32"),
        InputSpec("timesteps", ("batch",), "int64"),
    ]
    if conditional:
        inputs.append(InputSpec("class_labels", ("batch",), "int64"))
    return ExportSpec(
        module=(_ConditionalDenoiser if conditional else _UnconditionalDenoiser)(task.backbone).eval(),
        inputs=inputs,
        output_names=["prediction"],
        make_inputs=make,
        export_sizes={"batch": 2},
        check_sizes=[{"batch": 1}, {"batch": 3}],
        program_limits={"batch": 63},
        program_limits_reason=(
            "diffusers' Upsample2D calls .contiguous() when the batch is 64 or more; torch.export must pick one "
            "side of that branch. Sample in batches of up to 63 with the ExportedProgram (ONNX and TorchScript "
            "take any batch)."
        ),
    )


class _NodeModel(nn.Module):
    """A node classifier with the fixed argument list ``(x, edge_index)`` that export needs."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.backbone(x, edge_index)


def _node_classifier(task: Any) -> ExportSpec:
    features = task.in_channels

    def make(sizes: dict[str, int]) -> tuple[torch.Tensor, ...]:
        generator = _generator(sizes)
        x = torch.randn(sizes["nodes"], features, generator=generator)
        return x, torch.randint(0, sizes["nodes"], (2, sizes["edges"]), generator=generator)

    return ExportSpec(
        module=_NodeModel(task.backbone).eval(),
        inputs=[InputSpec("x", ("nodes", features), "float32"), InputSpec("edge_index", (2, "edges"), "int64")],
        output_names=["logits"],
        make_inputs=make,
        export_sizes={"nodes": 12, "edges": 40},
        check_sizes=[{"nodes": 7, "edges": 15}, {"nodes": 30, "edges": 120}],
    )


class _TextModel(nn.Module):
    """A text classifier with the fixed argument list ``(input_ids, attention_mask)`` that export needs."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids, attention_mask)


def _text_classifier(task: Any) -> ExportSpec:
    vocab, longest = task.backbone.vocab_size, task.backbone.max_length

    def make(sizes: dict[str, int]) -> tuple[torch.Tensor, ...]:
        generator = _generator(sizes)
        ids = torch.randint(5, vocab, (sizes["batch"], sizes["tokens"]), generator=generator)
        mask = torch.ones_like(ids)
        mask[0, sizes["tokens"] // 2 :] = 0  # the first sequence is padded
        return ids, mask

    return ExportSpec(
        module=_TextModel(task.backbone).eval(),
        inputs=[
            InputSpec("input_ids", ("batch", "tokens"), "int64", {"tokens": longest}),
            InputSpec("attention_mask", ("batch", "tokens"), "int64", {"tokens": longest}),
        ],
        output_names=["logits"],
        make_inputs=make,
        export_sizes={"batch": 2, "tokens": 12},
        check_sizes=[{"batch": 1, "tokens": 5}, {"batch": 3, "tokens": 40}],
    )


class _GraphModel(nn.Module):
    """A graph classifier with the fixed argument list ``(x, edge_index, batch)`` that export needs."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        return self.backbone(x, edge_index, batch)


def _graph_classifier(task: Any) -> ExportSpec:
    features = task.in_channels

    def make(sizes: dict[str, int]) -> tuple[torch.Tensor, ...]:
        generator = _generator(sizes)
        nodes, graphs = sizes["nodes"], sizes["graphs"]
        batch = torch.sort(torch.randint(0, graphs, (nodes,), generator=generator)).values
        batch[:graphs] = torch.arange(graphs)  # every graph has a node
        batch = torch.sort(batch).values
        edge_index = torch.randint(0, nodes, (2, sizes["edges"]), generator=generator)
        edge_index = edge_index[:, batch[edge_index[0]] == batch[edge_index[1]]]  # edges stay inside graphs
        return torch.randn(nodes, features, generator=generator), edge_index, batch

    return ExportSpec(
        module=_GraphModel(task.backbone).eval(),
        inputs=[
            InputSpec("x", ("nodes", features), "float32"),
            InputSpec("edge_index", (2, "edges"), "int64"),
            InputSpec("batch", ("nodes",), "int64"),
        ],
        output_names=["logits"],
        make_inputs=make,
        export_sizes={"nodes": 20, "edges": 60, "graphs": 3},
        check_sizes=[{"nodes": 9, "edges": 30, "graphs": 1}, {"nodes": 40, "edges": 150, "graphs": 5}],
    )
