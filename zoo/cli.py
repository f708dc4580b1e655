"""The ``zoo`` command.

This module stays cheap to import: ``zoo --help`` and ``zoo --version`` load neither torch nor Lightning.
Training subcommands hand over to :mod:`zoo.lightning_cli`; ``zoo models`` reads the registry.

Every command runs inside one error boundary: an error in what the user gave (a :class:`zoo.errors.ZooError`,
however deep a library wrapped it) prints ``zoo <command>: error: <message>`` and exits 2; Ctrl+C exits 130;
anything else keeps its traceback, says it is a bug, and exits 1.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import traceback
from importlib import import_module

__all__ = ["main"]

TRAINING_COMMANDS = {
    "fit": "train a model from a recipe, then test the best checkpoint",
    "validate": "run the validation loop of a recipe (e.g. on a checkpoint)",
    "test": "run the test loop of a recipe (e.g. on a checkpoint)",
    "predict": "run prediction with a recipe's model and data",
}
OTHER_COMMANDS = {
    "models": "list registered models with family, task, parameters, input and recipe",
    "generate": "print text sampled from a language-model checkpoint",
    "sample": "write images generated from a diffusion checkpoint (PNG grid and files)",
    "export": "export a checkpoint to verified ONNX, TorchScript and torch.export artifacts",
    "quantize": "int8 artifact of a checkpoint (onnxruntime or torchao), judged by accuracy against fp32",
    "prune": "prune a checkpoint (whole channels or single weights) while fine-tuning it with its recipe",
    "serve": "serve an exported artifact or a checkpoint over HTTP (batching, probes, metrics, auth)",
    "weights": "pretrained weights of zoo's models: list the cards, show one, download, publish a checkpoint",
    "leaderboard": "run benchmark suites into reproducible rows (run), render tables and plots (show)",
    "report": "how to reproduce a run (folder or checkpoint) and what threatens reproducing it",
    "profile": "train a few steps of a recipe: where a step's time and memory go; --leak_check",
    "tune": "search a recipe's hyperparameters from a sweep file (Optuna or Ray Tune; runs/sweeps/<name>)",
    "evaluate": "score a classifier checkpoint: per-class figures, calibration, intervals; --calibrate",
    "compare": "is checkpoint B better than A? paired bootstrap interval and McNemar's test",
    "explain": "why an image classifier chose its class: an attribution overlay (Captum)",
    "tune-batch-size": "the largest training batch that fits, and throughput at each size tried",
    "lr-find": "learning-rate range test on a recipe: a plot and a suggested learning rate",
}

# Command -> (module, function taking the remaining arguments), imported only when the command runs.
_HANDLERS = {
    "generate": ("zoo.generate", "run_generate_command"),
    "sample": ("zoo.sample", "run_sample_command"),
    "export": ("export.cli", "run_export_command"),
    "quantize": ("export.cli", "run_quantize_command"),
    "prune": ("zoo.prune", "run_prune_command"),
    "serve": ("export.serve.cli", "run_serve_command"),
    "leaderboard": ("zoo.leaderboard.cli", "run_leaderboard_command"),
    "weights": ("zoo.weights_command", "run_weights_command"),
    "report": ("zoo.report", "run_report_command"),
    "profile": ("zoo.profiling", "run_profile_command"),
    "tune-batch-size": ("zoo.finders", "run_batch_size_command"),
    "lr-find": ("zoo.finders", "run_lr_find_command"),
    "tune": ("zoo.sweeps.cli", "run_tune_command"),
    "evaluate": ("zoo.evaluation.cli", "run_evaluate_command"),
    "compare": ("zoo.evaluation.cli", "run_compare_command"),
    "explain": ("zoo.evaluation.explain", "run_explain_command"),
}

_HELP = """\
usage: zoo <command> [options]

A Lightning-based model zoo: CNN, Transformer, GNN and diffusion models behind one registry.

commands:
{commands}

examples:
  zoo fit --config recipes/quickstart.yaml
  zoo fit --config recipes/cifar10/resnet18.yaml --trainer.devices 2 --trainer.strategy ddp
  zoo test --config recipes/cifar10/resnet18.yaml --ckpt_path runs/cifar10/resnet18/version_0/checkpoints/last.ckpt
  zoo models --family cnn
  zoo leaderboard run --suite cora --seeds 3 && zoo leaderboard show
  zoo report runs/quickstart/version_0
  zoo generate --ckpt_path runs/shakespeare/gpt_nano/version_0/checkpoints/last.ckpt --prompt "ROMEO:"
  zoo export --ckpt_path runs/cifar10/resnet18/version_0/checkpoints/last.ckpt --out exported
  zoo quantize --ckpt_path runs/cifar10/resnet18/version_0/checkpoints/last.ckpt --out int8
  zoo sample --ckpt_path runs/shapes/ddpm_tiny/version_0/checkpoints/last.ckpt --out samples --num_images 64

Run `zoo <command> --help` for the options of a command (training commands list every recipe key).
"""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``zoo`` console script.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when omitted.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        rows = {**TRAINING_COMMANDS, **OTHER_COMMANDS}
        print(_HELP.format(commands="\n".join(f"  {name:<12}{text}" for name, text in rows.items())))
        return
    command, rest = args[0], args[1:]
    try:
        _run(command, rest, args)
    except KeyboardInterrupt:
        print(f"zoo {command}: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:
        from zoo.errors import find_user_error

        user_error = find_user_error(err)
        if user_error is None:  # not something the user can fix: keep the traceback, and say what it is
            traceback.print_exc()
            print(
                f"zoo {command}: the error above is a bug in zoo or a library it uses, not in what you gave it; "
                "please report it with the traceback",
                file=sys.stderr,
            )
            sys.exit(1)
        print(f"zoo {command}: error: {user_error}", file=sys.stderr)
        sys.exit(2)


def _run(command: str, rest: list[str], args: list[str]) -> None:
    """Run one command; the imports each needs happen here, so ``zoo --help`` stays instant."""
    if command == "--version":
        from zoo import __version__

        print(f"zoo {__version__}")
    elif command in TRAINING_COMMANDS:
        from zoo.lightning_cli import run_training_command

        run_training_command(args)
    elif command == "models":
        _models_command(rest)
    elif command in _HANDLERS:
        module, function = _HANDLERS[command]
        getattr(import_module(module), function)(rest)
    else:
        close = difflib.get_close_matches(command, [*TRAINING_COMMANDS, *OTHER_COMMANDS], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        sys.exit(f"zoo: unknown command '{command}'{hint} (see `zoo --help`)")


def _models_command(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="zoo models", description=OTHER_COMMANDS["models"])
    parser.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'resnet*' or 'timm/convnext*'")
    parser.add_argument("--family", help="keep one family: cnn, transformer, gnn or diffusion")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args(argv)

    from zoo.model_index import model_listing
    from zoo.registry import InputSpec

    try:
        entries = model_listing(args.pattern, family=args.family)
    except ValueError as err:
        parser.error(str(err))
    if args.json:
        print(json.dumps(entries, indent=2))
        return
    header = ("name", "family", "tasks", "params", "input", "recipe")
    rows = []
    for e in entries:
        spec = InputSpec(tuple(e["input_spec"]["shape"]), e["input_spec"]["dtype"])
        rows.append(
            (e["name"], e["family"], ",".join(e["tasks"]), _millions(e["num_params"]), str(spec), e["recipe"] or "-")
        )
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _millions(count: int) -> str:
    return f"{count / 1e6:.2f}M"


if __name__ == "__main__":
    main()
