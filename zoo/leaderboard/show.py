"""Leaderboard rows -> mean ± std tables (Markdown) and a quality-versus-training-time plot per suite.

Each recipe's quality also gets a 95% t-interval over its seeds, and a mark against the suite's best recipe
(same metric): Welch's t-test of the two recipes' seed values; a recipe is marked worse when p < 0.05.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from zoo.errors import MissingExtraError
from zoo.stats import lower_is_better, t_interval

__all__ = ["compare_to_best", "render_page", "summarise", "t_interval", "write_plot"]


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group rows by recipe, budget and device, and give each group's mean ± std over its seeds."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        device = row["hardware"].get("gpu") or f"{row['hardware']['cpu']} ({row['hardware']['cpu_threads']} threads)"
        groups[(row["recipe"], row["budget"], device)].append(row)
    summary = []
    for (recipe, budget, device), members in sorted(groups.items()):
        values = [r["quality"]["value"] for r in members]
        seconds = [r["train_seconds"] for r in members]
        summary.append(
            {
                "recipe": recipe,
                "budget": budget,
                "device": device,
                "metric": members[0]["quality"]["metric"],
                "mean": statistics.mean(values),
                "std": statistics.pstdev(values),
                "values": values,
                "interval": t_interval(values),
                "seeds": sorted(r["seed"] for r in members),
                "train_seconds": statistics.mean(seconds),
                "params": members[0]["params"],
                "flops_per_sample": next((r["flops_per_sample"] for r in members if r["flops_per_sample"]), None),
                "samples_per_second": _mean_or_none([r["samples_per_second"] for r in members]),
                "peak_memory_mb": max(r["peak_memory_mb"] for r in members),
                "export": _export_summary(members),
                "commit": members[-1]["git"]["commit"],
                "dirty": any(r["git"]["dirty"] for r in members),
                "command": members[0]["command"],
            }
        )
    return compare_to_best(summary)


def compare_to_best(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``vs_best`` to each row: ``best``, ``not significant (p=...)`` or ``worse (p=...)``, per metric and budget.

    The best row of a metric is the one with the best mean; the others are tested against it with Welch's
    t-test over their seed values. Rows with a single seed cannot be tested (``-``).
    """
    from scipy import stats

    for metric, budget in {(s["metric"], s["budget"]) for s in summary}:
        rows = [s for s in summary if s["metric"] == metric and s["budget"] == budget]
        best = (min if lower_is_better(metric) else max)(rows, key=lambda s: s["mean"])
        for row in rows:
            if row is best:
                row["vs_best"] = "best"
            elif len(row["values"]) < 2 or len(best["values"]) < 2:
                row["vs_best"] = "-"
            else:
                p = float(stats.ttest_ind(row["values"], best["values"], equal_var=False).pvalue)
                row["vs_best"] = f"worse (p={p:.2g})" if p < 0.05 else f"not significant (p={p:.2g})"
    return summary


def _mean_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.mean(known) if known else None


def _export_summary(rows: list[dict[str, Any]]) -> str:
    statuses = rows[-1]["export"]
    if statuses.get("skipped"):
        return "skipped"
    if "error" in statuses:
        return "error"
    passed = sum(1 for s in statuses.values() if s == "pass")
    return f"{passed}/{len(statuses)} pass"


def _scale(value: float, metric: str) -> str:
    return f"{value:.2%}" if "acc" in metric else f"{value:.4f}"


def render_table(summary: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    lines = [
        "| recipe | budget | device | quality, mean ± std | 95% interval | vs best | seeds | train time | params "
        "| train FLOPs/sample | samples/s | peak memory | export | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        spread = f" ± {_scale(s['std'], s['metric'])}" if len(s["seeds"]) > 1 else ""  # one seed has no spread
        quality = f"{s['metric']} {_scale(s['mean'], s['metric'])}{spread}"
        flops = "-" if s["flops_per_sample"] is None else f"{s['flops_per_sample'] / 1e6:.1f}M"
        speed = "-" if s["samples_per_second"] is None else f"{s['samples_per_second']:.0f}"
        commit = f"`{(s['commit'] or '?')[:8]}`" + (" (dirty)" if s["dirty"] else "")
        low_high = s.get("interval")
        interval = (
            "-" if low_high is None else f"[{_scale(low_high[0], s['metric'])}, {_scale(low_high[1], s['metric'])}]"
        )
        lines.append(
            f"| `{s['recipe']}` | {s['budget']} | {s['device']} | {quality} | {interval} | {s.get('vs_best', '-')} "
            f"| {len(s['seeds'])} "
            f"| {s['train_seconds']:.1f} s | {s['params'] / 1e6:.2f}M | {flops} | {speed} "
            f"| {s['peak_memory_mb']:.0f} MB | {s['export']} | {commit} |"
        )
    return "\n".join(lines)


def write_plot(summary: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Quality against training time, one point (with its seed spread) per recipe and budget, as a PNG."""
    try:
        import matplotlib
    except ImportError as err:
        raise MissingExtraError(
            "the leaderboard plot needs matplotlib: pip install 'lightning-zoo[leaderboard]'"
        ) from err

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    for s in summary:
        label = f"{Path(s['recipe']).stem} ({s['budget']})"
        axes.errorbar(s["train_seconds"], s["mean"], yerr=s["std"], fmt="o", capsize=3, label=label)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("training time per run (s, log scale)")
    axes.set_ylabel(summary[0]["metric"] if summary else "quality")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def render_page(results: dict[str, list[dict[str, Any]]], page: Path, image_dir: Path) -> Path:
    """Write the leaderboard page: one section (table and plot) per suite with results.

    Args:
        results: Suite name -> its validated rows.
        page: The Markdown file to write.
        image_dir: Where the plots go; linked from the page by a relative path.
    """
    lines = [
        "# Leaderboard",
        "",
        "Generated by `zoo leaderboard show` from `benchmarks/results/<suite>.jsonl`; do not edit by hand.",
        "Each row is the mean ± standard deviation over the seeds run, with the 95% t-interval of the mean and,",
        "against the suite's best recipe of the same budget, Welch's t-test over the seeds (worse: p < 0.05). Every",
        "underlying run records the command that reproduces it, the commit, the package versions and the hardware.",
        "Peak memory is GPU memory on a GPU",
        "and the process's peak resident memory on a CPU, sampled during the run (CPU rows from commits up to",
        "`dd5d72c8` hold the peak of the whole `zoo leaderboard run` process so far: an upper bound).",
        "",
    ]
    for suite, rows in sorted(results.items()):
        summary = summarise(rows)
        plot = write_plot(summary, image_dir / f"leaderboard_{suite}.png", f"suite {suite}")
        relative = plot.relative_to(page.parent) if plot.is_relative_to(page.parent) else plot
        lines += [
            f"## {suite}",
            "",
            render_table(summary),
            "",
            f"![{suite}: quality against training time]({relative})",
        ]
        lines += ["", "Reproduce a run (seed 0 of each recipe; other seeds change `--seed_everything`):", ""]
        lines += [f"* `{s['command']}`" for s in summary] + [""]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines) + "\n")
    return page
