"""``zoo weights``: list the weight cards, show one, download one into the cache, or publish a checkpoint.

zoo weights [PATTERN] [--json]
zoo weights show NAME.TAG [--json]
zoo weights download NAME.TAG...
zoo weights publish --ckpt_path C --tag T --out DIR [--report report.json] [--leaderboard F...] ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from zoo.files import cache_dir
from zoo.pretrained import CardMetric, WeightCard, all_cards, get_card, list_pretrained, weights_file
from zoo.pretrained.store import PACKAGED

__all__ = ["run_weights_command"]

_VERBS = ("list", "show", "download", "publish")


def run_weights_command(argv: list[str]) -> None:
    """Parse ``argv`` (the arguments after ``weights``) and run the verb; a bare ``zoo weights`` lists."""
    if not argv or (argv[0] not in _VERBS and argv[0] not in ("-h", "--help")):
        argv = ["list", *argv]
    parser = argparse.ArgumentParser(prog="zoo weights", description="Pretrained weights of zoo's own models.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="the cards (default verb)")
    listing.add_argument("pattern", nargs="?", default="*", help="shell-style pattern over NAME.TAG or the model")
    listing.add_argument("--json", action="store_true", help="every card in full, as JSON")
    show = verbs.add_parser("show", help="one card in full")
    show.add_argument("name", help="NAME.TAG, e.g. speedrun_net_tiny.cifar10")
    show.add_argument("--json", action="store_true")
    download = verbs.add_parser("download", help="fetch cards' files into the cache (for offline use later)")
    download.add_argument("names", nargs="+", help="NAME.TAG ...")
    publish = verbs.add_parser("publish", help="a checkpoint's weights as a safetensors file, and its card as code")
    publish.add_argument("--ckpt_path", type=Path, required=True)
    publish.add_argument("--tag", required=True, help="what the weights are for, e.g. cifar10")
    publish.add_argument("--out", type=Path, required=True, help="folder for the file and its card.json")
    publish.add_argument("--weights", choices=("ema", "trained"), default="ema")
    publish.add_argument("--report", type=Path, help="report.json of `zoo evaluate` on the checkpoint")
    publish.add_argument("--leaderboard", type=Path, nargs="*", default=None, help="default: benchmarks/results")
    publish.add_argument("--url_base", default=None, help="where the file will be uploaded")
    publish.add_argument("--training", default=None, help="the training budget in words (hardware, time)")
    publish.add_argument("--data_license", default=None)
    publish.add_argument("--dataset", default=None, help="the data the metrics were measured on, in words")
    publish.add_argument("--notes", default="")
    args = parser.parse_args(argv)
    if args.verb == "list":
        _list(args.pattern, args.json)
    elif args.verb == "show":
        card = get_card(args.name)
        print(json.dumps(card.to_dict(), indent=2) if args.json else _describe(card))
    elif args.verb == "download":
        for name in args.names:
            print(f"{name}: {weights_file(get_card(name))}")
    else:
        _publish(args)


def _list(pattern: str, as_json: bool) -> None:
    names = set(list_pretrained(pattern))
    cards = [c for c in all_cards() if c.name in names]
    if as_json:
        print(json.dumps([c.to_dict() for c in cards], indent=2))
        return
    if not cards:
        print(f"no weight card matches {pattern!r}; cards: {', '.join(list_pretrained()) or 'none'}")
        return
    rows = [("card", "params", "headline figure [95% interval]", "size", "where")]
    for card in cards:
        headline = _headline(card.metrics[0]) if card.metrics else "-"
        size = f"{card.size_bytes / 1e6:.1f} MB"
        rows.append((card.name, f"{card.num_params / 1e6:.2f}M", headline, size, _where(card)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print("\n`zoo weights show NAME.TAG` prints a card; zoo.create_model(MODEL, pretrained=TAG) loads it.")


def _headline(metric: CardMetric) -> str:
    interval = f" [{metric.interval[0]:.4g}, {metric.interval[1]:.4g}]" if metric.interval else ""
    return f"{metric.name} {metric.value:.4g}{interval}"


def _where(card: WeightCard) -> str:
    if (PACKAGED / card.filename).is_file():
        return "in the package"
    if (cache_dir("weights") / card.filename).is_file():
        return "cached"
    return "download"


def _describe(card: WeightCard) -> str:
    lines = [
        f"{card.name}: {card.model} trained for {card.tag}",
        f"  load with      zoo.create_model({card.model!r}, pretrained={card.tag!r})",
        f"  file           {card.filename} ({card.size_bytes:,} bytes, {_where(card)})",
        f"  sha256         {card.sha256}",
        *(f"  url            {url}" for url in card.urls),
        f"  weights        {card.weights}",
        f"  model kwargs   {dict(card.model_kwargs)}",
        f"  parameters     {card.num_params:,}",
        f"  forward FLOPs  {card.flops:,} per sample" if card.flops else "  forward FLOPs  depend on the input",
        f"  input          {_inputs(card)}",
        f"  labels         {', '.join(card.labels()) or '-'}",
        *(f"  metric         {m}" for m in card.metrics),
        f"  recipe         {card.recipe} (sha256 {card.recipe_sha256})",
        f"  commit         {card.commit}",
        f"  command        {card.command}",
        f"  training       {card.training}",
        *(f"  leaderboard    {row}" for row in card.leaderboard_rows),
        f"  data license   {card.data_license}",
    ]
    if card.notes:
        lines.append(f"  notes          {card.notes}")
    return "\n".join(lines)


def _inputs(card: WeightCard) -> str:
    specs = card.signature.get("inputs") or []
    preprocessing = card.signature.get("preprocessing") or {}
    shapes = ", ".join(f"{s['name']} {s['shape']} {s['dtype']}" for s in specs)
    kind = preprocessing.get("kind", "")
    return f"{shapes} ({kind} preprocessing)" if kind else shapes


def _publish(args: argparse.Namespace) -> None:
    from zoo.provenance import zoo_checkout
    from zoo.publish_weights import RELEASE_URL, publish

    leaderboard = args.leaderboard
    if leaderboard is None:
        leaderboard = sorted((zoo_checkout() / "benchmarks" / "results").glob("*.jsonl"))
    card, path = publish(
        args.ckpt_path,
        args.tag,
        args.out,
        weights=args.weights,
        report=args.report,
        leaderboard=leaderboard,
        url_base=args.url_base or RELEASE_URL,
        training=args.training,
        data_license=args.data_license,
        dataset=args.dataset,
        notes=args.notes,
    )
    print(f"# {path} ({card.size_bytes:,} bytes): upload it to {card.urls[0]}, then add this card to")
    print("# zoo/pretrained/cards.py (small files may ship in zoo/pretrained/files/ instead)")
    print(card.to_code())
