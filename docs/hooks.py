"""mkdocs hook: tables generated from the registry and the benchmark results, never typed by hand.

A page that contains ``<!-- zoo:models -->`` gets the table of registered models; one that contains
``<!-- zoo:recipe-results -->`` gets the recipe figures from ``benchmarks/results/*.jsonl``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    """Replace the placeholders in a page's markdown."""
    for name, table in _TABLES.items():
        marker = f"<!-- zoo:{name} -->"
        if marker in markdown:
            markdown = markdown.replace(marker, table())
    return markdown


def _records(kind: str | None) -> list[dict]:
    """Rows of ``benchmarks/results/*.jsonl``: those of benchmark ``kind``, or recipe runs for ``None``.

    Leaderboard rows (they name a ``suite``) are rendered by ``zoo leaderboard show`` instead.
    """
    rows = []
    for path in sorted((REPO / "benchmarks" / "results").glob("*.jsonl")):
        if "seeds" in path.stem:
            continue
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows += [r for r in records if r.get("benchmark") == kind and "suite" not in r]  # not leaderboard rows
    return rows


def _where(hw: dict) -> str:
    return f"{hw.get('gpu', hw['cpu'])}, {hw['cpu_threads']} threads, torch {hw['torch']}"


def _latency_table() -> str:
    rows = ["| model | batch | eager | TorchScript | onnxruntime | onnxruntime, transformer-optimised "
            "| GFLOP/s eager / onnxruntime (fp32 matmul ceiling) | hardware |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in _records("export_latency"):
        cells = []
        for key in ("eager", "torchscript", "onnxruntime", "onnxruntime+transformer-opt"):
            ms = r["median_ms"].get(key)
            cells.append("-" if ms is None else f"{ms:.2f} ms ({r['speedup_vs_eager'][key]:.2f}x)")
        rate, ceiling = r.get("gflops"), r.get("fp32_matmul_ceiling_gflops", {})
        rates = f"{rate['eager']:.0f} / {rate['onnxruntime']:.0f} ({ceiling['onnxruntime']:.0f})" if rate else "-"
        cells.append(rates)
        rows.append(f"| `{r['model']}` | {r['batch']} | {' | '.join(cells)} | {_where(r['hardware'])} |")
    return "\n".join(rows)


def _side_by_side_table() -> str:
    rows = ["| case | recipe | batch | zoo samples/s | plain loop samples/s | zoo / plain | zoo overhead per step "
            "| MFU zoo, plain | rounds | hardware |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in _newest(_records("side_by_side"), "case"):
        rates, mfu = r["samples_per_second"], r.get("mfu_vs_h100_bf16")
        utilisation = f"{mfu['zoo']:.1%}, {mfu['plain']:.1%}" if mfu else "-"
        rows.append(
            f"| {r['case']} | `{r['recipe']}` | {r['batch_size']} | {rates['zoo']:,.0f} | {rates['plain']:,.0f} "
            f"| {r['zoo_over_plain']:.3f} | {r['overhead_ms_per_step']:+.2f} ms | {utilisation} | {r['rounds']} "
            f"| {_where(r['hardware'])} |"
        )
    return "\n".join(rows)


def _time_to_accuracy_table() -> str:
    rows = ["| recipe | side | seconds to target | best within 30 s | final accuracy | training seconds | seeds "
            "| hardware |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def spread(stats: dict, fmt: str) -> str:
        if stats["mean"] is None:
            return "not reached"
        return f"{stats['mean']:{fmt}} ± {stats['std']:{fmt}}" if stats["std"] is not None else f"{stats['mean']:{fmt}}"

    for r in _records("time_to_accuracy"):
        for side in ("zoo", "plain"):
            figures = r[side]
            within = figures["best_accuracy_within_seconds"].get("30.0")
            rows.append(
                f"| `{r['recipe']}` | {side} | {spread(figures['seconds_to_target'], '.1f')} (to {r['target']:.1%}) "
                f"| {spread(within, '.2%') if within else '-'} | {spread(figures['final_accuracy'], '.2%')} "
                f"| {statistics.mean(line[-1][0] for line in figures['timelines']):.2f} s | {r['seeds']} "
                f"| {_where(r['hardware'])} |"
            )
    return "\n".join(rows)


def _side_by_side_process_table() -> str:
    rows = ["| case | `zoo fit` | hand-written script | plain / zoo | test acc1 zoo, plain | rounds | hardware |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in _newest(_records("side_by_side_process"), "case"):
        seconds, accuracy = r["seconds"], r["test_acc1"]
        rows.append(
            f"| {r['case']} | {seconds['zoo']:.1f} s | {seconds['plain']:.1f} s | {r['plain_over_zoo']:.2f} "
            f"| {accuracy['zoo']:.1%}, {accuracy['plain']:.1%} | {r['rounds']} | {_where(r['hardware'])} |"
        )
    return "\n".join(rows)


def _newest(records: list[dict], key: str) -> list[dict]:
    """The newest record for each value of ``key``, in the order the values first appear (files are appended)."""
    newest: dict[str, dict] = {}
    for record in records:
        newest[record[key]] = record
    return list(newest.values())


def _diffusion_table() -> str:
    rows = ["| what | figure | wall time | hardware | command |", "|---|---|---|---|---|"]
    for r in _records("fid_floor"):
        rows.append(
            f"| real-vs-real floor: {r['real']} vs {r['fake']} | {r['metric']} {r['value']:.3f} "
            f"| {r['wall_s']:.0f} s | {_where(r['hardware'])} | `{r['command']}` |"
        )
    for r in _records("shapes_sample_accuracy"):
        judged = r["judge_test_accuracy"]
        if isinstance(judged, list):  # a vote of several seeded judges
            judge = f"vote of {len(judged)} judges, {min(judged):.1%}-{max(judged):.1%}"
        else:
            judge = f"one unseeded judge, {judged:.1%}"
        rows.append(
            f"| shapes samples drawn as the asked-for class ({r['sampler']}, {r['steps']} steps; {judge}) "
            f"| {r['sample_accuracy']:.1%} | {r['wall_s']:.0f} s "
            f"| {_where(r['hardware'])} | `{r['command']}` |"
        )
    return "\n".join(rows)


def _seed_table() -> str:
    rows = ["| recipe | metric, mean ± std | seeds | time per run | hardware |", "|---|---|---|---|---|"]
    records = []
    for path in sorted((REPO / "benchmarks" / "results").glob("*seeds*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in _newest(records, "recipe"):
        rows.append(
            f"| `{r['recipe']}` | {r['metric']} {r['mean']:.2%} ± {r['std']:.2%} | {len(r['values'])} "
            f"| {r['seconds_per_run']:.1f} s | {_where(r['hardware'])} |"
        )
    return "\n".join(rows)


def _activation_checkpointing_table() -> str:
    rows = ["| model | batch | peak memory off | on | saved | step time off | on | time cost | hardware |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in _newest(_records("activation_checkpointing"), "case"):
        off, on = r["off"], r["on"]
        rows.append(
            f"| `{r['backbone']}` | {r['batch']} | {off['peak_rss_mb']:,.0f} MB | {on['peak_rss_mb']:,.0f} MB "
            f"| {r['peak_saved_mb']:,.0f} MB | {off['step_s'] * 1000:,.0f} ms | {on['step_s'] * 1000:,.0f} ms "
            f"| {r['time_cost']:.2f}x | {_where(r['hardware'])} |"
        )
    return "\n".join(rows)


def _weight_cards_table() -> str:
    from zoo.pretrained import all_cards

    rows = ["| card | params | figures (95% interval) | measured on | trained | file |", "|---|---|---|---|---|---|"]
    for card in all_cards():
        figures = "<br>".join(
            f"{m.name} {m.value:.4g}" + (f" [{m.interval[0]:.4g}, {m.interval[1]:.4g}]" if m.interval else "")
            for m in card.metrics[:2]
        )
        measured = f"{card.metrics[0].dataset}, {card.metrics[0].split}" if card.metrics else "-"
        rows.append(
            f"| `{card.name}` | {card.num_params / 1e6:.2f}M | {figures} | {measured} | {card.training} "
            f"| {card.size_bytes / 1e6:.1f} MB |"
        )
    return "\n".join(rows)


def _models_table() -> str:
    import zoo

    rows = ["| name | family | tasks | params | input | recipe | description |", "|---|---|---|---|---|---|---|"]
    for name in zoo.list_models():
        e = zoo.model_info(name)
        recipe = f"`{e.recipe}`" if e.recipe else "-"
        rows.append(
            f"| `{e.name}` | {e.family} | {', '.join(e.tasks)} | {e.num_params / 1e6:.2f}M | {e.input_spec} "
            f"| {recipe} | {e.description} |"
        )
    return "\n".join(rows)


def _results_table() -> str:
    rows = [
        "| recipe | result | best monitored | epochs | wall time | hardware | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in _records(None):
        hw = r["hardware"]
        device = f"{hw.get('gpu', hw['cpu'])}, torch {hw['torch']}"
        if "test/acc1" in r["test"]:
            result, best = f"test acc1 {r['test']['test/acc1']:.2%}", r.get("best_val")
            best = f"val acc1 {best:.2%}" if best is not None else "-"
        elif "test/loss" in r["test"]:
            result, best = f"test loss {r['test']['test/loss']:.4f}", f"val loss {r['best_val']:.4f}"
        else:
            result, best = f"val loss {r['val']['val/loss']:.3f}", f"val loss {r['best_val']:.3f}"
        rows.append(
            f"| `{r['recipe']}` | {result} | {best} | {r['epochs']} | {r['wall_s']:.0f} s "
            f"| {device} | `{r['command']}` |"
        )
    return "\n".join(rows)


_TABLES = {
    "models": _models_table,
    "recipe-results": _results_table,
    "seed-results": _seed_table,
    "side-by-side-process": _side_by_side_process_table,
    "export-latency": _latency_table,
    "diffusion-results": _diffusion_table,
    "side-by-side": _side_by_side_table,
    "time-to-accuracy": _time_to_accuracy_table,
    "weight-cards": _weight_cards_table,
    "activation-checkpointing": _activation_checkpointing_table,
}
