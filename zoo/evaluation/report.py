"""Write a :class:`~zoo.evaluation.classification.ClassificationReport`: JSON, Markdown, two PNGs, a table.

``report.json`` (everything, for scripts), ``report.md`` (the figures with their intervals and the per-class
table, for a pull request or a model card), ``confusion.png`` (row-normalised, with counts) and
``reliability.png`` (accuracy against confidence per bin, over the bins' sizes). The plots need matplotlib
(``pip install "lightning-zoo[evaluate]"``); without it the JSON and Markdown are still written.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from zoo.evaluation.classification import ClassificationReport

__all__ = ["NAMES", "format_table", "write_report"]

NAMES = {
    "acc1": "accuracy", "acc5": "top-5 accuracy", "f1_macro": "macro F1", "f1_weighted": "weighted F1",
    "auroc": "AUROC (one-vs-rest)", "average_precision": "average precision (one-vs-rest)",
    "ece": "expected calibration error (15 bins)", "mce": "maximum calibration error",
    "nll": "negative log-likelihood (nats)", "brier": "Brier score",
}  # fmt: skip


def write_report(report: ClassificationReport, out: Path, header: dict[str, Any]) -> list[Path]:
    """Write the report's files into ``out`` (created); ``header`` (checkpoint, split, ...) leads the JSON.

    Returns:
        The files written.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = [
        _atomic(out / "report.json", json.dumps({**header, **report.to_dict()}, indent=2, default=_plain) + "\n")
    ]
    written.append(_atomic(out / "report.md", _markdown(report, header)))
    try:
        import matplotlib
    except ImportError:
        return written
    matplotlib.use("Agg")
    written += [_confusion_png(report, out / "confusion.png"), _reliability_png(report, out / "reliability.png")]
    return written


def format_table(report: ClassificationReport, title: str) -> Any:
    """A rich table of the scalar figures with their intervals."""
    from rich.table import Table

    level = f"{report.level:.0%} interval"
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column(level, justify="right")
    for name, interval in report.metrics.items():
        table.add_row(
            NAMES[name],
            _number(name, interval.value),
            f"[{_number(name, interval.low)}, {_number(name, interval.high)}]",
        )
    return table


def _number(name: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{100 * value:.2f}%" if name in ("acc1", "acc5", "f1_macro", "f1_weighted") else f"{value:.4f}"


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else str(value)


def _atomic(path: Path, text: str) -> Path:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
    return path


def _markdown(report: ClassificationReport, header: dict[str, Any]) -> str:
    level = f"{report.level:.0%}"
    lines = [f"# Evaluation of `{header.get('checkpoint')}`", ""]
    lines += [f"- {key}: `{value}`" for key, value in header.items() if key != "checkpoint"]
    lines += [f"- examples: {report.examples}",
              f"- intervals: {level} percentile bootstrap, {report.resamples} resamples of the examples, "
              f"seed {report.seed}",
              "", f"| figure | value | {level} interval |", "|---|---|---|"]  # fmt: skip
    for name, interval in report.metrics.items():
        lines.append(f"| {NAMES[name]} | {_number(name, interval.value)} | "
                     f"[{_number(name, interval.low)}, {_number(name, interval.high)}] |")  # fmt: skip
    lines += ["", "| class | support | precision | recall | F1 |", "|---|---|---|---|---|"]
    for row in report.per_class:
        cells = [f"{100 * row[k]['value']:.1f} [{100 * row[k]['low']:.1f}, {100 * row[k]['high']:.1f}]"
                 for k in ("precision", "recall", "f1")]  # fmt: skip
        lines.append(f"| {row['label']} | {row['support']} | " + " | ".join(cells) + " |")
    lines += ["", "![confusion matrix](confusion.png) ![reliability diagram](reliability.png)", ""]
    return "\n".join(lines)


def _confusion_png(report: ClassificationReport, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.array(report.confusion, dtype=float)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = max(4.0, 0.45 * len(report.labels) + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(report.labels))
    axes.set_xticks(ticks, report.labels, rotation=45, ha="right")
    axes.set_yticks(ticks, report.labels)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if len(report.labels) <= 20:
        for (row, column), count in np.ndenumerate(counts):
            axes.text(column, row, f"{int(count)}", ha="center", va="center", fontsize=7,
                      color="white" if rates[row, column] > 0.5 else "black")  # fmt: skip
    figure.colorbar(image, ax=axes, label="fraction of the true class")
    axes.set_title(f"confusion matrix ({report.examples} examples)")
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def _reliability_png(report: ClassificationReport, path: Path) -> Path:
    import matplotlib.pyplot as plt

    bins = report.reliability
    width = 1.0 / len(bins)
    centres = [b["upper"] - width / 2 for b in bins]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    top.bar(centres, [0 if math.isnan(b["accuracy"]) else b["accuracy"] for b in bins], width=width * 0.95,
            color="tab:blue", label="accuracy")  # fmt: skip
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set_ylabel("accuracy")
    ece = report.metrics["ece"]
    top.set_title(f"reliability: ECE {ece.value:.4f} [{ece.low:.4f}, {ece.high:.4f}]")
    top.legend(loc="upper left")
    bottom.bar(centres, [b["count"] for b in bins], width=width * 0.95, color="tab:gray")
    bottom.set_xlabel("confidence (top probability)")
    bottom.set_ylabel("examples")
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path
