"""``zoo leaderboard run|show``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zoo.provenance import zoo_checkout

__all__ = ["run_leaderboard_command"]


def _home(repo: Path) -> Path | None:
    """Where results and pages go by default: ``None`` inside the clone (its own folders), else ``./leaderboard``.

    Run outside the clone, ``zoo leaderboard`` must not write into the checkout it happens to be installed from.
    """
    here = Path.cwd().resolve()
    return None if here.is_relative_to(repo.resolve()) else here / "leaderboard"


def run_leaderboard_command(argv: list[str]) -> None:
    """Parse ``argv`` (the arguments after ``leaderboard``) and run or show suites."""
    parser = argparse.ArgumentParser(prog="zoo leaderboard", description="Reproducible leaderboard rows.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a suite's recipes over seeds and append one row per run")
    run.add_argument("--suite", required=True, help="name in benchmarks/suites, or a suite file")
    run.add_argument("--seeds", type=int, default=3, help="how many seeds per recipe")
    run.add_argument("--first_seed", type=int, default=0, help="seeds first_seed .. first_seed + seeds - 1")
    run.add_argument("--recipes", nargs="*", default=None, help="only these of the suite's recipes (paths)")
    run.add_argument("--budget", default="cpu", help="one of the suite's budgets (cpu, gpu, ...)")
    run.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default: benchmarks/results/<suite>.jsonl in a zoo clone, else ./leaderboard/<suite>.jsonl",
    )
    run.add_argument("--no_export", action="store_true", help="skip exporting each best checkpoint")
    show = commands.add_parser("show", help="render mean ± std tables and plots into the docs")
    show.add_argument("--suites", nargs="*", default=None, help="default: every suite with results")
    show.add_argument(
        "--results",
        type=Path,
        default=None,
        help="folder of <suite>.jsonl (default: benchmarks/results in a zoo clone, else ./leaderboard)",
    )
    show.add_argument(
        "--page",
        type=Path,
        default=None,
        help="default: docs/pages/leaderboard.md in a zoo clone, else ./leaderboard/leaderboard.md",
    )
    args = parser.parse_args(argv)
    repo = zoo_checkout()
    if args.command == "run":
        _run(parser, args, repo)
    else:
        _show(parser, args, repo)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, repo: Path) -> None:
    from zoo.leaderboard.run import run_entry
    from zoo.leaderboard.suites import load_suite

    try:
        suite = load_suite(args.suite, repo)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    if args.budget not in suite.budgets:
        parser.error(f"suite {suite.name} has no budget {args.budget!r}; it has {sorted(suite.budgets)}")
    entries = suite.recipes
    if args.recipes is not None:
        known = [entry.recipe for entry in suite.recipes]
        unknown = sorted(set(args.recipes) - set(known))
        if unknown:
            parser.error(f"suite {suite.name} has no recipes {unknown}; it has {known}")
        entries = [entry for entry in suite.recipes if entry.recipe in args.recipes]
    if args.seeds < 1 or args.first_seed < 0:
        parser.error(f"--seeds must be >= 1 and --first_seed >= 0, got {args.seeds} and {args.first_seed}")
    out = args.out or (_home(repo) or repo / "benchmarks" / "results") / f"{suite.name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            row = run_entry(suite, entry, args.budget, seed, repo, export=not args.no_export)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            quality = row["quality"]
            print(f"{entry.recipe} seed {seed}: {quality['metric']} {quality['value']:.4f} in {row['train_seconds']} s")
    print(f"rows appended to {out}")


def _show(parser: argparse.ArgumentParser, args: argparse.Namespace, repo: Path) -> None:
    from zoo.leaderboard.rows import read_rows
    from zoo.leaderboard.show import render_page

    home = _home(repo)
    results_dir = args.results or home or repo / "benchmarks" / "results"
    names = args.suites or sorted(p.stem for p in (repo / "benchmarks" / "suites").glob("*.yaml"))
    results = {}
    try:
        for name in names:
            path = results_dir / f"{name}.jsonl"
            if path.is_file() or args.suites:
                results[name] = read_rows(path)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    if not results:
        parser.error(f"no results under {results_dir} for suites {names}; run `zoo leaderboard run` first")
    page = args.page or (home / "leaderboard.md" if home else repo / "docs" / "pages" / "leaderboard.md")
    render_page(results, page, page.parent / "img")
    print(f"wrote {page} ({sum(len(r) for r in results.values())} rows, suites {', '.join(sorted(results))})")
    sys.stdout.flush()
