"""What to export for a task and how to check it, read from the task's inference signature.

Each task exports its inference module alone (no loss, no metrics), with the named inputs, outputs and
symbolic sizes its :class:`~zoo.tasks.signature.InferenceSignature` declares, exercised on the example inputs
the task makes. Verification feeds inputs whose symbolic sizes differ from those used at export, so an
artifact that baked a size in fails. Nothing here knows one task from another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from zoo.checkpoints import LoadedCheckpoint
from zoo.errors import ConfigError
from zoo.tasks.base import ZooTask
from zoo.tasks.signature import InferenceSignature, TensorSpec

__all__ = ["ExportSpec", "InputSpec", "export_spec"]

InputSpec = TensorSpec  # the name zoo 0.1 used for a named input


@dataclass
class ExportSpec:
    """How one task is exported and checked.

    Attributes:
        module: The network to export, in eval mode; its ``forward`` takes the inputs in order.
        signature: The task's inference signature (inputs, outputs, preprocessing, labels, sizes).
        make_inputs: ``sizes -> tensors``: inputs for the symbolic sizes given (e.g. ``{"batch": 3}``).
        rtol, atol: Verification tolerances.
        tolerance_reason: Why a model needs more than rtol 1e-3, atol 1e-5 (empty when it does not).
    """

    module: nn.Module
    signature: InferenceSignature
    make_inputs: Callable[[dict[str, int]], tuple[torch.Tensor, ...]]
    rtol: float = 1e-3
    atol: float = 1e-5
    tolerance_reason: str = ""

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """The named inputs, in order."""
        return self.signature.inputs

    @property
    def output_names(self) -> list[str]:
        """Names of the outputs, in order."""
        return [spec.name for spec in self.signature.outputs]

    @property
    def export_sizes(self) -> dict[str, int]:
        """The symbolic sizes the artifact is traced or exported with."""
        return dict(self.signature.example_sizes)

    @property
    def check_sizes(self) -> list[dict[str, int]]:
        """Other sizes it is verified on."""
        return [dict(sizes) for sizes in self.signature.check_sizes]

    @property
    def program_limits(self) -> dict[str, int]:
        """Upper bounds ``torch.export`` needs on symbolic sizes beyond the model's own."""
        return dict(self.signature.limits)

    @property
    def program_limits_reason(self) -> str:
        """Why those bounds exist."""
        return self.signature.limits_reason


def export_spec(source: LoadedCheckpoint | ZooTask) -> ExportSpec:
    """The :class:`ExportSpec` of a task, or of the task a checkpoint was loaded into.

    Raises:
        ValueError: For a module that is not a zoo task (it declares no inference signature).
    """
    task = source.task if isinstance(source, LoadedCheckpoint) else source
    if not isinstance(task, ZooTask):
        raise ConfigError(f"export needs a zoo task (a zoo.tasks.ZooTask), got {type(task).__name__}")
    signature = task.inference_signature()
    if isinstance(source, LoadedCheckpoint) and (source.pruning or {}).get("method") == "structured":
        from zoo.pruning.masks import example_inputs_of, remove_pruned_channels

        # Structured pruning left whole channels at zero; cut them out so the artifact is smaller and faster.
        remove_pruned_channels(task.backbone, example_inputs_of(task))
    module = task.inference_module().eval()

    def make_inputs(sizes: dict[str, int]) -> tuple[torch.Tensor, ...]:
        return task.example_inputs(sizes, _generator(sizes))

    return ExportSpec(module=module, signature=signature, make_inputs=make_inputs)


def _generator(sizes: dict[str, int]) -> torch.Generator:
    """A generator seeded by the sizes, so the same sizes always give the same inputs."""
    return torch.Generator().manual_seed(sum(v * 1_000**i for i, v in enumerate(sizes.values())))
