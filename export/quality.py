"""Judge a compressed artifact by what it predicts on held-out data, against the fp32 checkpoint it came from.

Elementwise tolerances are the wrong test for int8: every logit moves a little, and what matters is whether
the answers do. The task runs over the validation (or test) split twice, through its own
``logits_and_targets`` (classifiers) or forward (language models): once with its fp32 network and once with the
network replaced by the artifact. Classifiers report both accuracies, the drop in points and the top-1
agreement with fp32; language models report both perplexities and the relative rise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["ArtifactCall", "Quality", "measure_quality"]


class ArtifactCall(nn.Module):
    """A stand-in backbone that runs an artifact: tensors go to the CPU and the output comes back to their device.

    It holds one empty parameter on ``device``, because zoo's evaluation reads a task's device from its first
    parameter, and a task whose backbone is an artifact has no other.
    """

    def __init__(self, run: Callable[..., torch.Tensor], device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.run = run
        self.device_anchor = nn.Parameter(torch.empty(0, device=device), requires_grad=False)

    def forward(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        """The artifact's first output for ``inputs`` (a missing attention mask is passed as ones)."""
        first = inputs[0]
        assert first is not None
        tensors = [(torch.ones_like(t) if t is None else t).detach().cpu().contiguous() for t in (first, *inputs[1:])]
        return self.run(*tensors).to(first.device)


@contextmanager
def backbone_replaced(task: Any, module: nn.Module) -> Iterator[None]:
    """Run ``task`` with ``module`` as its backbone, restoring the original afterwards."""
    original = task.backbone
    task.backbone = module
    try:
        yield
    finally:
        task.backbone = original


@dataclass(frozen=True)
class Quality:
    """The compressed artifact against fp32 on one split.

    Attributes:
        metric: ``"accuracy"`` (percent) or ``"perplexity"``.
        split: ``"val"`` or ``"test"``.
        samples: Examples (classifiers) or sequences (language models) scored.
        reference: fp32's value.
        compressed: The artifact's value.
        change: Accuracy lost in points, or the perplexity's rise in percent (negative when it improved).
        limit: The largest ``change`` allowed.
        agreement: Percent of examples where both predict the same class (classifiers only).
    """

    metric: str
    split: str
    samples: int
    reference: float
    compressed: float
    change: float
    limit: float
    agreement: float | None = None

    @property
    def passed(self) -> bool:
        """The change is within the limit."""
        return self.change <= self.limit

    def describe(self) -> str:
        """One line: both values, the change against the limit, and the agreement."""
        if self.metric == "accuracy":
            text = (
                f"accuracy fp32 {self.reference:.2f}% -> int8 {self.compressed:.2f}% on {self.samples} {self.split} "
                f"examples: a drop of {self.change:.2f} points (limit {self.limit:g}), top-1 agreement "
                f"{self.agreement:.2f}%"
            )
        else:
            text = (
                f"perplexity fp32 {self.reference:.4f} -> int8 {self.compressed:.4f} on {self.samples} {self.split} "
                f"sequences: {self.change:+.2f}% (limit {self.limit:g}%)"
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        """The fields and ``passed``, as JSON-able data for the artifact's metadata."""
        return {**asdict(self), "passed": self.passed}


def measure_quality(
    loaded: Any,
    data: Any,
    run: Callable[..., torch.Tensor],
    split: str = "val",
    limit_batches: int | None = None,
    max_drop: float = 1.0,
    max_perplexity_rise: float = 2.0,
) -> Quality:
    """Score ``loaded.task`` and the artifact behind ``run`` on ``split`` of ``data``.

    Args:
        loaded: The fp32 checkpoint, as :func:`zoo.checkpoints.load_checkpoint` returns it.
        data: The recipe's data module.
        run: ``(*inputs) -> first output`` of the artifact (:func:`export.formats.runner`).
        split: ``"val"`` (default) or ``"test"``.
        limit_batches: Score only the first N batches.
        max_drop: Accuracy points a classifier may lose.
        max_perplexity_rise: Percent a language model's perplexity may rise.
    """
    from zoo.tasks.language_modeling import LanguageModel

    task = loaded.task
    if isinstance(task, LanguageModel):
        from zoo.evaluation.language import evaluate_language_model

        def perplexity() -> tuple[float, int]:
            report = evaluate_language_model(loaded, data, split, resamples=1, limit_batches=limit_batches)
            return report["metrics"]["perplexity"]["value"], int(report["blocks"])

        reference, samples = perplexity()
        with backbone_replaced(task, ArtifactCall(run, next(task.parameters()).device)):
            compressed, _ = perplexity()
        rise = 100 * (compressed / reference - 1)
        return Quality("perplexity", split, samples, reference, compressed, rise, max_perplexity_rise)
    from zoo.evaluation.predictions import collect_predictions

    fp32 = collect_predictions(loaded, data, split, limit_batches)
    with backbone_replaced(task, ArtifactCall(run, next(task.parameters()).device)):
        int8 = collect_predictions(loaded, data, split, limit_batches)
    reference = 100 * float((fp32.logits.argmax(1) == fp32.targets).float().mean())
    compressed = 100 * float((int8.logits.argmax(1) == int8.targets).float().mean())
    agreement = 100 * float((fp32.logits.argmax(1) == int8.logits.argmax(1)).float().mean())
    samples = int(fp32.targets.numel())
    return Quality("accuracy", split, samples, reference, compressed, reference - compressed, max_drop, agreement)
