"""``zoo evaluate`` and ``zoo compare``: a classifier checkpoint's figures with intervals, and two of them paired."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

from zoo.arguments import split_passed_on

__all__ = ["run_compare_command", "run_evaluate_command"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=None, help="the recipe (default: the one the checkpoint recorded)"
    )
    parser.add_argument(
        "--split", default=None, choices=("test", "val"),
        help="the split to score (default: test; val for language models)",
    )  # fmt: skip
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the examples")
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    parser.add_argument("--level", type=float, default=0.95, help="the intervals' coverage")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, or auto (a GPU when there is one)")
    parser.add_argument(
        "--weights", default="ema", choices=("ema", "trained"), help="EMA weights when the run kept them"
    )
    parser.add_argument("--limit_batches", type=int, default=None, help="score only the first N batches")


def _device(name: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.resamples < 1:
        parser.error(f"--resamples must be at least 1, got {args.resamples}")
    if not 0 < args.level < 1:
        parser.error(f"--level must be between 0 and 1, got {args.level}")


def run_evaluate_command(argv: list[str]) -> None:
    """``zoo evaluate --ckpt_path C [--config R] [--split test] [--out DIR] [--calibrate] [-- data overrides]``."""
    argv, overrides = split_passed_on(argv)
    parser = argparse.ArgumentParser(
        prog="zoo evaluate",
        description="Score a classifier checkpoint on a split: accuracy, top-5, per-class precision/recall/F1, "
        "macro and weighted F1, AUROC, average precision, the confusion matrix and calibration (ECE, MCE, NLL, "
        "Brier), each with a bootstrap interval. Arguments after -- change the data (--data.init_args.batch_size 256).",
    )
    parser.add_argument("--ckpt_path", type=Path, required=True, help="a checkpoint written by zoo fit")
    parser.add_argument(
        "--out", type=Path, default=None, help="where the report goes (default: beside the checkpoint's run)"
    )
    parser.add_argument(
        "--calibrate", action="store_true",
        help="fit a temperature on the validation split, report calibration before and after, and write a "
        "calibrated copy of the checkpoint into --out",
    )  # fmt: skip
    generative = parser.add_argument_group("diffusion models: FID over sample sets")
    generative.add_argument(
        "--sample_sets", type=int, default=5, help="independent sample sets (seeds seed, seed+1...)"
    )
    generative.add_argument("--num_images", type=int, default=500, help="images per sample set")
    generative.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    generative.add_argument("--fid_features", default=None, help="as the model's fid_features (default: its own)")
    robust = parser.add_argument_group("robustness (image classifiers)")
    robust.add_argument(
        "--corruptions", action="store_true", help="accuracy under 15 common corruptions x 5 severities"
    )
    robust.add_argument("--corruption_types", nargs="+", default=None, help="only these corruption types")
    robust.add_argument("--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5], help="severities (1-5)")
    robust.add_argument("--ood", default=None, help="score out-of-distribution images: noise, or a recipe's test data")
    _common(parser)
    args = parser.parse_args(argv)
    _check(parser, args)
    if any(s not in (1, 2, 3, 4, 5) for s in args.severities):
        parser.error(f"--severities must be between 1 and 5, got {args.severities}")
    from rich.console import Console

    from zoo.evaluation.classification import evaluate_classifier
    from zoo.evaluation.predictions import build_data, collect_predictions, load_classifier
    from zoo.evaluation.report import format_table, write_report

    loaded = load_classifier(args.ckpt_path, args.weights, _device(args.device), language=True, generative=True)
    data = build_data(args.config, loaded, overrides)
    from zoo.tasks.diffusion import DiffusionModel
    from zoo.tasks.language_modeling import LanguageModel

    if isinstance(loaded.task, DiffusionModel):
        if args.calibrate or args.corruptions or args.ood:
            parser.error("--calibrate, --corruptions and --ood are for classifiers; this is a diffusion model")
        _evaluate_diffusion_model(args, loaded, data)
        return
    if isinstance(loaded.task, LanguageModel):
        if args.calibrate or args.corruptions or args.ood:
            parser.error("--calibrate, --corruptions and --ood are for classifiers; this is a language model")
        _evaluate_language_model(args, loaded, data)
        return
    args.split = args.split or "test"
    predictions = collect_predictions(loaded, data, args.split, args.limit_batches)
    out = args.out or default_out(args.ckpt_path, args.split)
    report = evaluate_classifier(predictions.logits, predictions.targets, predictions.labels, args.resamples,
                                 args.seed, args.level)  # fmt: skip
    header: dict[str, Any] = {
        "checkpoint": str(args.ckpt_path), "task": loaded.task_class, "split": args.split, "weights": loaded.weights,
        "recipe": str(args.config) if args.config else "recorded",
    }  # fmt: skip
    console = Console()
    if args.calibrate:
        header["calibration"] = _calibrate(args, loaded, data, predictions, report, out)
        temperature = header["calibration"]["temperature"]
        calibrated = evaluate_classifier(predictions.logits / temperature, predictions.targets, predictions.labels,
                                         args.resamples, args.seed, args.level)  # fmt: skip
        header["calibration"]["after"] = {k: calibrated.metrics[k].as_dict() for k in ("ece", "mce", "nll", "brier")}
    if args.corruptions or args.ood:
        header["robustness"] = _robustness(args, loaded, data, out, console)
    files = write_report(report, out, header)
    console.print(format_table(report, f"{args.ckpt_path} on the {args.split} split ({report.examples} examples)"))
    if args.calibrate:
        calibration = header["calibration"]
        console.print(
            f"temperature {calibration['temperature']:.4f} (fitted on the validation split): ECE "
            f"{calibration['before']['ece']['value']:.4f} -> {calibration['after']['ece']['value']:.4f}; "
            f"calibrated checkpoint: {calibration['checkpoint']}"
        )
    console.print("written: " + ", ".join(str(f) for f in files))


def _evaluate_language_model(args: argparse.Namespace, loaded: Any, data: Any) -> None:
    """Loss, perplexity, bits per token and per byte with block-bootstrap intervals: report.json and a table."""
    from rich.console import Console
    from rich.table import Table

    from zoo.evaluation.language import evaluate_language_model

    split = args.split or "val"
    result = evaluate_language_model(loaded, data, split, args.resamples, args.seed, args.level, args.limit_batches)
    out = args.out or default_out(args.ckpt_path, split)
    out.mkdir(parents=True, exist_ok=True)
    header = {"checkpoint": str(args.ckpt_path), "task": loaded.task_class, "weights": loaded.weights}
    (out / "report.json").write_text(json.dumps({**header, **result}, indent=2) + "\n")
    table = Table(title=f"{args.ckpt_path} on the {split} split ({result['tokens']} tokens, {result['blocks']} blocks)")
    for column in ("figure", "value", f"{args.level:.0%} interval (blocks resampled)"):
        table.add_column(column)
    for name, figure in result["metrics"].items():
        table.add_row(name.replace("_", " "), f"{figure['value']:.4f}", f"[{figure['low']:.4f}, {figure['high']:.4f}]")
    console = Console()
    console.print(table)
    console.print(f"written: {out / 'report.json'}")


def _evaluate_diffusion_model(args: argparse.Namespace, loaded: Any, data: Any) -> None:
    """FID over sample sets, with the t-interval of their mean: report.json and a line."""
    from zoo.evaluation.generative import fid_over_sample_sets

    split = args.split or "test"
    result = fid_over_sample_sets(loaded, data, split, args.sample_sets, args.num_images, args.steps,
                                  args.fid_features, args.seed, args.level, args.limit_batches)  # fmt: skip
    out = args.out or default_out(args.ckpt_path, split)
    out.mkdir(parents=True, exist_ok=True)
    header = {"checkpoint": str(args.ckpt_path), "task": loaded.task_class, "weights": loaded.weights}
    (out / "report.json").write_text(json.dumps({**header, **result}, indent=2) + "\n")
    low, high = result["interval"]
    print(
        f"{result['metric']}: {result['mean']:.4f}, {args.level:.0%} interval [{low:.4f}, {high:.4f}] over "
        f"{result['sample_sets']} sets of {result['images_per_set']} images (each: "
        f"{', '.join(f'{v:.3f}' for v in result['values'])}) against {result['real_images']} {split} images"
    )
    print(f"written: {out / 'report.json'}")


def _robustness(args: argparse.Namespace, loaded: Any, data: Any, out: Path, console: Any) -> dict[str, Any]:
    """Corruption accuracy and out-of-distribution scores; written to ``corruptions.json``/``.png``, ``ood.json``."""
    from zoo.evaluation.robustness import (
        corruption_accuracy,
        corruption_table,
        ood_images,
        ood_scores,
        test_batches,
        write_heatmap,
    )

    batches = test_batches(loaded, data, args.limit_batches)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    if args.corruptions:
        result = corruption_accuracy(loaded, batches, args.corruption_types, tuple(args.severities), args.seed)
        (out / "corruptions.json").write_text(json.dumps(result, indent=2) + "\n")
        with contextlib.suppress(ImportError):  # the heat map needs matplotlib (the evaluate extra)
            write_heatmap(result, out / "corruptions.png")
        summary["corruptions"] = {k: result[k] for k in ("clean", "mean_corruption_accuracy", "relative_drop")}
        console.print(corruption_table(result))
    if args.ood:
        inside = [images for images, _ in batches]
        result = ood_scores(loaded, inside, ood_images(args.ood, loaded, inside, args.seed))
        result["source"] = args.ood
        (out / "ood.json").write_text(json.dumps(result, indent=2) + "\n")
        summary["ood"] = result
        console.print(
            f"out-of-distribution ({args.ood}): AUROC {result['msp']['auroc']:.4f} (max softmax), "
            f"{result['energy']['auroc']:.4f} (energy); FPR at 95% TPR {result['msp']['fpr_at_95_tpr']:.4f}, "
            f"{result['energy']['fpr_at_95_tpr']:.4f}"
        )
    return summary


def default_out(ckpt_path: Path, split: str) -> Path:
    """``<run folder>/evaluation/<checkpoint>-<split>`` for a checkpoint in a run folder, else ``evaluation/...``."""
    parent = ckpt_path.resolve().parent
    base = parent.parent if parent.name == "checkpoints" else Path("")
    return base / "evaluation" / f"{ckpt_path.stem}-{split}"


def _calibrate(
    args: argparse.Namespace, loaded: Any, data: Any, predictions: Any, report: Any, out: Path
) -> dict[str, Any]:
    """Fit the temperature on validation logits and write the calibrated copy of the checkpoint."""
    from zoo.errors import UsageError
    from zoo.evaluation.calibration import fit_temperature, write_calibrated_checkpoint
    from zoo.evaluation.predictions import collect_predictions

    if args.split == "val":
        raise UsageError("--calibrate fits the temperature on the val split; score another split (--split test)")
    validation = collect_predictions(loaded, data, "val", args.limit_batches)
    temperature = fit_temperature(validation.logits, validation.targets)
    calibration = {
        "temperature": temperature,
        "fitted_on": "val",
        "validation_examples": int(validation.targets.shape[0]),
        "source": str(args.ckpt_path),
        "before": {k: report.metrics[k].as_dict() for k in ("ece", "mce", "nll", "brier")},
    }
    target = write_calibrated_checkpoint(args.ckpt_path, out / "calibrated.ckpt", {
        k: v for k, v in calibration.items() if k != "before"})  # fmt: skip
    return {**calibration, "checkpoint": str(target)}


def run_compare_command(argv: list[str]) -> None:
    """``zoo compare A.ckpt B.ckpt [--config R] [--split test] [-- data overrides]``."""
    argv, overrides = split_passed_on(argv)
    parser = argparse.ArgumentParser(
        prog="zoo compare",
        description="Is B better than A? Both classifiers on the same examples: the accuracy difference with a "
        "paired bootstrap interval, and McNemar's exact test.",
    )
    parser.add_argument("a", type=Path, help="checkpoint A")
    parser.add_argument("b", type=Path, help="checkpoint B")
    parser.add_argument("--out", type=Path, default=None, help="also write compare.json there")
    _common(parser)
    args = parser.parse_args(argv)
    _check(parser, args)
    from zoo.errors import UsageError
    from zoo.evaluation.compare import compare_predictions
    from zoo.evaluation.predictions import build_data, collect_predictions, load_classifier

    device = _device(args.device)
    args.split = args.split or "test"
    first = load_classifier(args.a, args.weights, device)
    second = load_classifier(args.b, args.weights, device)
    data = build_data(args.config, first, overrides)
    pa = collect_predictions(first, data, args.split, args.limit_batches)
    pb = collect_predictions(second, data, args.split, args.limit_batches)
    if not bool((pa.targets == pb.targets).all()):
        raise UsageError(f"{args.a} and {args.b} were scored on different examples; pass the same --config")
    result = compare_predictions(str(args.a), pa.logits, str(args.b), pb.logits, pa.targets, args.resamples,
                                 args.seed, args.level)  # fmt: skip
    print(f"A {args.a}: accuracy {100 * result.accuracy_a:.2f}%")
    print(f"B {args.b}: accuracy {100 * result.accuracy_b:.2f}%  ({result.examples} {args.split} examples)")
    print(result.verdict)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compare.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
