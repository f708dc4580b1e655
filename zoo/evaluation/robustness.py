"""How an image classifier holds up: accuracy under common corruptions, and out-of-distribution detection.

Corruptions (:mod:`zoo.evaluation.corruptions`) are applied in pixel space: each test batch is un-normalised
with the data's mean and standard deviation, corrupted in ``[0, 1]``, and normalised again, so the model sees
what its preprocessing would make of a corrupted image. Each (type, severity, batch) draws from its own
generator seeded by ``(seed, type, severity, batch)``: the result does not depend on the order they run in.

Out-of-distribution detection scores every test image and every image of another set by the maximum softmax
probability (Hendrycks & Gimpel, 2017) and by the energy ``logsumexp(logits)`` (Liu et al., 2020), higher
meaning "in distribution", and reports the AUROC of telling the two apart and the false-positive rate at 95%
true-positive rate (the share of outside images accepted when 95% of the test images are).
"""

from __future__ import annotations

import zlib
from typing import Any

import torch

from zoo.errors import UsageError
from zoo.evaluation.corruptions import CORRUPTIONS, corrupt

__all__ = ["corruption_accuracy", "corruption_table", "ood_images", "ood_scores", "test_batches", "write_heatmap"]


def test_batches(loaded: Any, data: Any, limit_batches: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The test split's ``(images, labels)`` batches, as the loader normalises them, kept in memory.

    Raises:
        UsageError: When the task is not an image classifier or the data does not record its normalisation.
    """
    from zoo.tasks.classification import ImageClassifier

    if not isinstance(loaded.task, ImageClassifier):
        raise UsageError(
            f"corruptions and --ood need an image classifier; {loaded.path} holds a {type(loaded.task).__name__}"
        )
    data.prepare_data()
    data.setup("test")
    batches = []
    for index, batch in enumerate(data.test_dataloader()):
        if limit_batches is not None and index >= limit_batches:
            break
        images, labels = batch[0], batch[1]
        batches.append((images, labels))
    return batches


def _normalisation(loaded: Any) -> tuple[torch.Tensor, torch.Tensor]:
    facts = loaded.task.data_facts
    if facts.mean is None or facts.std is None:
        raise UsageError(
            f"{loaded.path} does not record the data's mean and std, which corrupting in pixel space needs"
        )
    return torch.tensor(facts.mean)[None, :, None, None], torch.tensor(facts.std)[None, :, None, None]


def _accuracy(task: Any, batches: list[tuple[torch.Tensor, torch.Tensor]], transform: Any) -> float:
    device = next(task.parameters()).device
    right = total = 0
    with torch.inference_mode():
        for index, (images, labels) in enumerate(batches):
            logits = task(transform(index, images).to(device))
            right += int((logits.argmax(1).cpu() == labels).sum())
            total += labels.numel()
    return right / total


def corruption_accuracy(
    loaded: Any,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    types: list[str] | None = None,
    severities: tuple[int, ...] = (1, 2, 3, 4, 5),
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy on the clean batches and under each corruption type and severity.

    Returns:
        ``clean``, ``accuracy`` (``{type: {severity: accuracy}}``), ``per_type`` (mean over severities),
        ``mean_corruption_accuracy`` (over all types and severities) and ``relative_drop``
        (``1 - mean corruption accuracy / clean``).
    """
    types = list(types or CORRUPTIONS)
    unknown = [t for t in types if t not in CORRUPTIONS]
    if unknown:
        raise UsageError(f"unknown corruption(s) {unknown}; choose from {', '.join(CORRUPTIONS)}")
    mean, std = _normalisation(loaded)
    task = loaded.task
    clean = _accuracy(task, batches, lambda index, images: images)

    def corrupted(name: str, severity: int) -> Any:
        def transform(index: int, images: torch.Tensor) -> torch.Tensor:
            generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}/{name}/{severity}/{index}".encode()))
            pixels = (images * std + mean).clamp(0, 1)
            return (corrupt(pixels, name, severity, generator) - mean) / std

        return transform

    accuracy = {name: {severity: _accuracy(task, batches, corrupted(name, severity)) for severity in severities}
                for name in types}  # fmt: skip
    per_type = {name: sum(values.values()) / len(values) for name, values in accuracy.items()}
    overall = sum(per_type.values()) / len(per_type)
    return {
        "clean": clean,
        "accuracy": accuracy,
        "per_type": per_type,
        "mean_corruption_accuracy": overall,
        "relative_drop": 1 - overall / clean if clean else float("nan"),
        "severities": list(severities),
        "seed": seed,
    }


def ood_scores(loaded: Any, inside: list[torch.Tensor], outside: list[torch.Tensor]) -> dict[str, Any]:
    """AUROC and FPR at 95% TPR of telling ``inside`` from ``outside`` images, by MSP and by energy.

    Raises:
        UsageError: When the outside images do not have the test images' shape.
    """
    if inside[0].shape[1:] != outside[0].shape[1:]:
        raise UsageError(
            f"the --ood images are {tuple(outside[0].shape[1:])} (channels, height, width) but the test images are "
            f"{tuple(inside[0].shape[1:])}; give a data set of the model's input size"
        )
    task = loaded.task
    device = next(task.parameters()).device
    with torch.inference_mode():
        logits_in = torch.cat([task(images.to(device)).float().cpu() for images in inside])
        logits_out = torch.cat([task(images.to(device)).float().cpu() for images in outside])
    result: dict[str, Any] = {"inside": logits_in.shape[0], "outside": logits_out.shape[0]}
    for name, score in (("msp", lambda z: z.softmax(1).max(1).values), ("energy", lambda z: z.logsumexp(1))):
        s_in, s_out = score(logits_in).double(), score(logits_out).double()
        result[name] = {"auroc": _auroc(s_in, s_out), "fpr_at_95_tpr": _fpr_at_tpr(s_in, s_out, 0.95)}
    return result


def _auroc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(positive score > negative score), ties counting a half (the Mann-Whitney statistic)."""
    scores = torch.cat([positive, negative])
    ranks = torch.empty_like(scores)
    order = scores.argsort()
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    for value in scores.unique()[torch.unique(scores, return_counts=True)[1] > 1]:  # average ranks of ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _fpr_at_tpr(positive: torch.Tensor, negative: torch.Tensor, tpr: float) -> float:
    threshold = torch.quantile(positive, 1 - tpr)
    return float((negative >= threshold).double().mean())


def ood_images(source: str, loaded: Any, inside: list[torch.Tensor], seed: int = 0) -> list[torch.Tensor]:
    """The outside images, normalised as the model expects.

    ``noise``: uniform pixels, as many as the test images, seeded; else a recipe, whose data's test split is read
    and re-normalised from its own statistics to the model's.

    Raises:
        UsageError: When the recipe's data does not say how it normalises its images.
    """
    mean, std = _normalisation(loaded)
    if source == "noise":
        generator = torch.Generator().manual_seed(seed)
        return [(torch.rand(images.shape, generator=generator) - mean) / std for images in inside]
    from types import SimpleNamespace

    from zoo.evaluation.predictions import build_data

    data = build_data(source, SimpleNamespace(path=source, metadata=SimpleNamespace(recipe=None)), [])
    facts = data.data_facts
    if facts.mean is None or facts.std is None:
        raise UsageError(f"--ood {source}: its data does not record its mean and std")
    their_mean = torch.tensor(facts.mean)[None, :, None, None]
    their_std = torch.tensor(facts.std)[None, :, None, None]
    data.prepare_data()
    data.setup("test")
    total = sum(images.shape[0] for images in inside)
    out, seen = [], 0
    for batch in data.test_dataloader():
        images = batch[0] if isinstance(batch, list | tuple) else batch
        pixels = (images * their_std + their_mean).clamp(0, 1)
        out.append((pixels - mean) / std)
        seen += images.shape[0]
        if seen >= total:
            break
    return out


def write_heatmap(result: dict[str, Any], path: Any) -> Any:
    """Accuracy per corruption type (rows) and severity (columns) as an annotated PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    types = list(result["accuracy"])
    severities = result["severities"]
    values = np.array([[result["accuracy"][t][s] for s in severities] for t in types])
    figure, axes = plt.subplots(figsize=(5.5, 0.35 * len(types) + 1.6))
    image = axes.imshow(values, cmap="viridis", vmin=0, vmax=max(result["clean"], float(values.max())), aspect="auto")
    axes.set_xticks(range(len(severities)), [str(s) for s in severities])
    axes.set_yticks(range(len(types)), types)
    axes.set_xlabel("severity")
    for (row, column), value in np.ndenumerate(values):
        axes.text(column, row, f"{100 * value:.0f}", ha="center", va="center", fontsize=7,
                  color="white" if value < 0.6 * result["clean"] else "black")  # fmt: skip
    figure.colorbar(image, ax=axes, label="accuracy")
    axes.set_title(
        f"clean {100 * result['clean']:.1f}%, mean corrupted {100 * result['mean_corruption_accuracy']:.1f}%"
    )
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def corruption_table(result: dict[str, Any]) -> Any:
    """A rich table: accuracy per corruption type (rows, worst first) and severity, the type's mean and drop."""
    from rich.table import Table

    severities = result["severities"]
    table = Table(
        title=f"accuracy under corruptions by severity (clean {100 * result['clean']:.2f}%); drop: relative to clean",
        title_justify="left",
    )
    table.add_column("corruption", no_wrap=True)
    for column in (*(str(s) for s in severities), "mean", "drop"):
        table.add_column(column, justify="right", no_wrap=True)
    clean = result["clean"] or float("nan")
    for name, mean in sorted(result["per_type"].items(), key=lambda item: item[1]):
        cells = [f"{100 * result['accuracy'][name][s]:.1f}%" for s in severities]
        table.add_row(name, *cells, f"{100 * mean:.1f}%", f"{100 * (1 - mean / clean):.1f}%")
    overall = result["mean_corruption_accuracy"]
    table.add_row("all", *("" for _ in severities), f"{100 * overall:.1f}%", f"{100 * result['relative_drop']:.1f}%")
    return table
