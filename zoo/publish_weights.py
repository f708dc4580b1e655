"""From a checkpoint to a published weights file and its card: ``zoo weights publish``.

A maintainer's path is leaderboard run -> ``zoo evaluate`` -> ``zoo weights publish`` -> paste the printed card
into :mod:`zoo.pretrained.cards` and upload the file. Everything on the card is read, not typed: the weights
(the EMA average by default) and the architecture from the checkpoint, the signature from the rebuilt task,
the metrics with their intervals from the evaluation report (else from the matching leaderboard rows, else
the checkpoint's own last figures, without an interval), the recipe, commit and command from the checkpoint's
run record, and the leaderboard rows whose recipe hash matches.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import statistics
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoints import LoadedCheckpoint, load_checkpoint
from zoo.errors import ConfigError, MissingFileError
from zoo.leaderboard.rows import row_id
from zoo.pretrained.card import CardMetric, WeightCard
from zoo.pretrained.store import sha256_of
from zoo.provenance import zoo_checkout
from zoo.stats import lower_is_better, t_interval

__all__ = ["RELEASE_URL", "publish"]

# Where published files are uploaded: a release of the project, one asset per file.
RELEASE_URL = "https://github.com/lightning-zoo/zoo/releases/download/weights-v1"
# Figures of an evaluation report worth a place on a card, in this order, when the report has them.
_CARD_FIGURES = ("acc1", "acc5", "ece", "nll", "loss", "perplexity", "bits_per_token", "fid", "shape_accuracy")


def publish(
    ckpt_path: Path,
    tag: str,
    out: Path,
    weights: str = "ema",
    report: Path | None = None,
    leaderboard: Iterable[Path] = (),
    url_base: str = RELEASE_URL,
    training: str | None = None,
    data_license: str | None = None,
    dataset: str | None = None,
    notes: str = "",
    repo: Path | None = None,
) -> tuple[WeightCard, Path]:
    """Write ``out/<model>.<tag>.safetensors`` from ``ckpt_path`` and return its card and the file.

    Args:
        ckpt_path: A checkpoint written by ``zoo fit``.
        tag: What the weights are for (``"cifar10"``).
        out: Folder for the safetensors file and ``<model>.<tag>.card.json``.
        weights: ``"ema"`` (the EMA average when the run kept one, else the trained weights) or ``"trained"``.
        report: ``report.json`` of ``zoo evaluate`` on the checkpoint: its figures and 95% intervals go on the
            card.
        leaderboard: Leaderboard result files; rows whose recipe hash matches are linked, and give the metric
            (mean over seeds with a t interval) when there is no report.
        url_base: Where the file will be uploaded; the card's URL is ``<url_base>/<filename>``.
        training: The training budget in words; default: epochs, steps and hardware from the run record.
        data_license: The license of the training data; default: the data module's answer
            (:meth:`zoo.data.ZooDataModule.license_of` on the run's recorded arguments).
        dataset: The data the metrics were measured on, in words; default: the data module's name.
        notes: Anything a user should know.
        repo: The zoo checkout the run used, for the recipe's hash at the run's commit; default: this one.

    Raises:
        ConfigError: For a checkpoint whose backbone is not a registered zoo model (a ``timm/`` or ``hf/``
            model's weights belong to that library), or an unknown ``weights`` choice.
        MissingFileError: For a missing checkpoint or report.
    """
    from zoo.registry import model_info
    from zoo.weights import save_weights

    if weights not in ("ema", "trained"):
        raise ConfigError(f"weights must be 'ema' or 'trained', got {weights!r}")
    loaded = load_checkpoint(ckpt_path, weights="trained" if weights == "trained" else "ema")
    task, metadata = loaded.task, loaded.metadata
    name = getattr(task, "backbone_name", None)
    build = getattr(task, "_backbone_build", None)
    if not isinstance(name, str) or build is None or "/" in name:
        raise ConfigError(
            f"{ckpt_path}: its backbone {name!r} is not a registered zoo model; weight cards are for zoo's own "
            "models (a timm/ or hf/ model's weights belong to that library's hub)"
        )
    entry = model_info(name)
    model_kwargs = {
        k: v for k, v in build[1].items() if k not in ("pretrained", "weights") and entry.defaults.get(k, _UNSET) != v
    }
    backbone = task.backbone
    filename = f"{name}.{tag}.safetensors"
    path = save_weights(backbone, Path(out) / filename)
    environment = metadata.environment or {}
    git = environment.get("git") or {}
    repo = repo or zoo_checkout()
    recipe_path, recipe_sha = _recipe(metadata, git.get("commit"), repo)
    data_class, data_args = _data_module(metadata)
    rows = [row for row in _rows(leaderboard) if recipe_sha and row.get("recipe_sha256") == recipe_sha]
    recorded_license = data_class.license_of(data_args) if data_class is not None else ""
    signature = task.inference_signature()
    card = WeightCard(
        model=name,
        tag=tag,
        filename=filename,
        sha256=sha256_of(path),
        size_bytes=path.stat().st_size,
        urls=(f"{url_base.rstrip('/')}/{filename}",),
        model_kwargs=model_kwargs,
        signature=signature.to_dict(),
        metrics=_metrics(report, rows, metadata, dataset or _name(data_class) or "the recipe's data"),
        num_params=sum(p.numel() for p in backbone.parameters()),
        flops=_forward_flops(task, signature),
        weights=loaded.weights,
        recipe=recipe_path,
        recipe_sha256=recipe_sha,
        commit=(git.get("commit") or "unknown") + ("-dirty" if git.get("dirty") else ""),
        command=_command(environment, repo),
        training=training or _training(loaded, environment),
        leaderboard_rows=tuple(row_id(row) for row in rows),
        data_license=data_license or recorded_license or "unknown: state it with --data_license",
        notes=notes,
    )
    (Path(out) / f"{name}.{tag}.card.json").write_text(json.dumps(card.to_dict(), indent=2) + "\n")
    return card, path


_UNSET = object()


def _recipe(metadata: Any, commit: str | None, repo: Path) -> tuple[str, str]:
    """The recipe's path relative to the repository and the SHA-256 of its text at the run's commit."""
    recorded = metadata.recipe
    if recorded is None or not recorded.path:
        return "", ""
    path = Path(recorded.path)
    parts = path.parts
    relative = Path(*parts[parts.index("recipes") :]) if "recipes" in parts else path
    text = None
    if commit:
        shown = subprocess.run(
            ["git", "-C", str(repo), "show", f"{commit}:{relative.as_posix()}"], capture_output=True, check=False
        )
        text = shown.stdout if shown.returncode == 0 else None
    if text is None:
        for candidate in (path, repo / relative):
            if candidate.is_file():
                text = candidate.read_bytes()
                break
    return relative.as_posix(), hashlib.sha256(text).hexdigest() if text is not None else ""


def _data_module(metadata: Any) -> tuple[type | None, dict[str, Any]]:
    """The run's data module class (zoo's own only: a checkpoint names code) and its recorded arguments."""
    recorded = metadata.recipe
    if recorded is None or not recorded.text:
        return None, {}
    import yaml

    import zoo.data

    data = (yaml.safe_load(recorded.text) or {}).get("data") or {}
    module, _, name = str(data.get("class_path") or "").rpartition(".")
    found = getattr(zoo.data, name, None) if module.startswith("zoo.data") else None
    return (found if hasattr(found, "license_of") else None), dict(data.get("init_args") or {})


def _name(data_class: type | None) -> str | None:
    return None if data_class is None else data_class.__name__


def _metrics(report: Path | None, rows: list[dict[str, Any]], metadata: Any, dataset: str) -> tuple[CardMetric, ...]:
    if report is not None:
        if not Path(report).is_file():
            raise MissingFileError(f"evaluation report {report} does not exist (write it with `zoo evaluate`)")
        data = json.loads(Path(report).read_text())
        figures = data.get("metrics") or {}
        if "examples" in data:
            size = f"{data['examples']:,} examples"
        else:
            size = f"{data.get('tokens', 0):,} tokens in {data.get('blocks', 0):,} blocks"
        split = f"{data.get('split', 'test')}, {size}"
        bootstrap = data.get("bootstrap") or {}
        unit = bootstrap.get("unit", "example")
        method = f"bootstrap over {unit}s, {bootstrap['resamples']} resamples" if bootstrap else "as reported"
        return tuple(
            CardMetric(
                name=key,
                value=float(figures[key]["value"]),
                dataset=data.get("dataset") or dataset,
                split=data.get("split_description") or split,
                interval=(float(figures[key]["low"]), float(figures[key]["high"])) if "low" in figures[key] else None,
                interval_method=data.get("interval_method") or method,
                higher_is_better=not lower_is_better(key),
            )
            for key in _CARD_FIGURES
            if key in figures
        )
    if rows:
        quality = rows[0]["quality"]
        values = [float(r["quality"]["value"]) for r in rows]
        mean = statistics.mean(values)
        interval = t_interval(values)
        interval = None if interval is None else (round(interval[0], 6), round(interval[1], 6))
        return (
            CardMetric(
                name=quality["metric"],
                value=mean,
                dataset=dataset,
                split=f"{quality['metric'].partition('/')[0] or 'test'} split; mean of {len(values)} seeds",
                interval=interval,
                interval_method=f"t over {len(values)} seeds (leaderboard rows)" if interval else "",
                higher_is_better=bool(quality.get("higher_is_better", True)),
            ),
        )
    measured = metadata.metrics or {}
    return tuple(
        CardMetric(
            name=key,
            value=float(value),
            dataset=dataset,
            split=key.partition("/")[0] + " split, last epoch",
            higher_is_better=not lower_is_better(key),
        )
        for key, value in measured.items()
        if key.startswith(("test/", "val/")) and key.partition("/")[2] in _CARD_FIGURES
    )


def _rows(files: Iterable[Path]) -> list[dict[str, Any]]:
    rows = []
    for file in files:
        for line in Path(file).read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                if "suite" in record:
                    rows.append(record)
    return rows


def _forward_flops(task: Any, signature: Any) -> int | None:
    """Forward FLOPs of one sample at the largest input the signature allows, or ``None`` for a graph.

    A language model is counted at a full context; a graph's cost follows its size, which the card cannot fix.
    """
    if signature.raw_input in (None, "graph"):
        return None
    from torch.utils.flop_counter import FlopCounterMode

    generator = torch.Generator().manual_seed(0)
    longest = {dim: bound for spec in signature.inputs for dim, bound in spec.max_sizes.items()}
    sizes = dict(signature.example_sizes) | longest | {"batch": 1}
    inputs = task.example_inputs(sizes, generator)
    module = task.inference_module().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return int(counter.get_total_flops())


# Run arguments that change where output goes or how it looks, not the weights: left out of a card's command.
_COSMETIC = ("--trainer.default_root_dir", "--trainer.enable_progress_bar", "--trainer.enable_model_summary")


def _command(environment: Mapping[str, Any], repo: Path) -> str:
    """``zoo <arguments>`` of the run, paths inside the checkout made relative, output-only arguments left out."""
    words = shlex.split(str(environment.get("command") or ""))
    if not words:
        return ""
    prefixes = {str(Path(environment.get("zoo", {}).get("path") or repo)) + "/", str(repo) + "/"}
    arguments: list[str] = []
    skip = False
    for word in words[1:]:
        if skip:
            skip = False
            continue
        if word.split("=")[0] in _COSMETIC:
            skip = "=" not in word
            continue
        for prefix in prefixes:
            word = word.replace(prefix, "")
        parts = Path(word).parts
        if Path(word).is_absolute() and "recipes" in parts:  # a recipe of another checkout of zoo
            word = Path(*parts[parts.index("recipes") :]).as_posix()
        arguments.append(word)
    return shlex.join(["zoo", *arguments])


def _training(loaded: LoadedCheckpoint, environment: Mapping[str, Any]) -> str:
    hardware = environment.get("hardware") or {}
    device = hardware.get("gpu") or f"{hardware.get('cpu_threads', '?')}-thread {hardware.get('cpu', 'CPU')} CPU"
    return f"{loaded.epoch + 1} epochs, {loaded.global_step} steps on one {device}"
