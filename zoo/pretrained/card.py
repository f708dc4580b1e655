"""A weight card: everything a user needs to trust, load, use and re-create a set of trained weights.

torchvision's ``Weights(url, transforms, meta)`` showed that weights are data: a checksum, the preprocessing,
the label names and the metrics travel with the file. A zoo card adds where the figures came from (the
dataset, split and confidence interval of each metric, the leaderboard rows that measured them), what
produced the weights (the recipe and its SHA-256, the zoo commit, the exact command, the hardware and time it
took) and the license of the training data. Cards are plain frozen dataclasses written as code in
:mod:`zoo.pretrained.cards` (``zoo weights publish`` prints one), so a change to a card is a reviewed diff.
"""

from __future__ import annotations

import json
import pprint
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from zoo.errors import ConfigError

__all__ = ["CardMetric", "WeightCard"]


@dataclass(frozen=True)
class CardMetric:
    """One measured figure of the weights.

    Attributes:
        name: The metric as zoo logs it (``"test/acc1"``, ``"val/loss"``, ``"shape_accuracy"``).
        value: The figure for these weights.
        dataset: The data it was measured on (``"CIFAR-10 (JPEG copy, quality 75)"``).
        split: Which part of it, with its size (``"test, 10,000 images"``).
        interval: The 95% confidence interval ``(low, high)``, or ``None`` where none was computed.
        interval_method: How the interval was computed (``"bootstrap over test images"``,
            ``"t over 3 seeds"``).
        higher_is_better: Whether a larger value is better (accuracy) or worse (loss).
    """

    name: str
    value: float
    dataset: str
    split: str
    interval: tuple[float, float] | None = None
    interval_method: str = ""
    higher_is_better: bool = True

    def __str__(self) -> str:
        interval = f" (95% CI {self.interval[0]:.4g} to {self.interval[1]:.4g}, {self.interval_method})"
        return f"{self.name} = {self.value:.4g}{interval if self.interval else ''} on {self.dataset}, {self.split}"


@dataclass(frozen=True)
class WeightCard:
    """Trained weights of one registered model under one tag.

    Attributes:
        model: The registry name (``"speedrun_net_tiny"``).
        tag: What the weights were trained for (``"cifar10"``); ``pretrained="cifar10"`` picks the card.
        filename: The safetensors file's name, the same in the package, the cache and every mirror.
        sha256: SHA-256 of the file; a download or cached copy that differs is deleted.
        size_bytes: The file's size.
        urls: Where to download the file from when neither the package nor the cache holds it (``https://``,
            ``file://``, or an object-store URL such as ``s3://`` read through fsspec), tried in order after the
            ``ZOO_WEIGHTS_URL`` mirror.
        model_kwargs: Builder arguments the weights were trained with, beyond the registry's defaults
            (``{"num_classes": 3}``); a user's own arguments win, and a different class count gets a new head.
        signature: The inference signature of the trained task (preprocessing, input size, labels), as stored
            in zoo's exported artifacts (``zoo.tasks.signature.InferenceSignature.to_dict``).
        metrics: The figures measured on these weights.
        num_params: Parameters of the model built with ``model_kwargs``.
        flops: Forward floating-point operations for one sample at the signature's input size, or ``None``
            where it depends on the input (a graph's size).
        weights: ``"ema"`` for an exponential moving average of the trained weights, ``"trained"`` otherwise.
        recipe: The recipe that trained them, relative to the repository.
        recipe_sha256: SHA-256 of that recipe's text when it ran.
        commit: The zoo commit the run used.
        command: The exact command that re-creates the checkpoint the weights came from.
        training: The budget it trained on, honestly (hardware, epochs, wall time).
        leaderboard_rows: Ids of the leaderboard rows (``zoo.leaderboard.rows.row_id``) that measured the recipe.
        data_license: The license of the training data.
        notes: Anything a user should know before relying on the weights.
    """

    model: str
    tag: str
    filename: str
    sha256: str
    size_bytes: int
    urls: tuple[str, ...]
    model_kwargs: Mapping[str, Any]
    signature: Mapping[str, Any]
    metrics: tuple[CardMetric, ...]
    num_params: int
    flops: int | None
    weights: str
    recipe: str
    recipe_sha256: str
    commit: str
    command: str
    training: str
    leaderboard_rows: tuple[str, ...] = ()
    data_license: str = ""
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse a card that could not be checked or loaded safely, naming the field."""
        problems = []
        if not self.filename.endswith(".safetensors"):
            problems.append(f"filename {self.filename!r} is not a .safetensors file (the only format cards use)")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            problems.append(f"sha256 {self.sha256!r} is not 64 lower-case hex digits")
        if "." in self.tag or not self.tag:
            problems.append(f"tag {self.tag!r} must be a non-empty word without '.' (cards are named MODEL.TAG)")
        if self.weights not in ("ema", "trained"):
            problems.append(f"weights {self.weights!r} is neither 'ema' nor 'trained'")
        if problems:
            raise ConfigError(f"weight card {self.model}.{self.tag}: " + "; ".join(problems))

    @property
    def name(self) -> str:
        """``"<model>.<tag>"``, as ``zoo weights show`` takes it."""
        return f"{self.model}.{self.tag}"

    def labels(self) -> tuple[str, ...]:
        """The class names of the trained task's output, if it has any."""
        return tuple((self.signature.get("labels") or ()) if self.signature else ())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, the metrics as objects."""
        return json.loads(json.dumps(asdict(self)))

    def to_code(self, width: int = 120) -> str:
        """The card as Python source to paste into :mod:`zoo.pretrained.cards` (what ``publish`` prints)."""
        lines = ["WeightCard("]
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "extra" and not value:
                continue
            if item.name == "metrics":
                rendered = "(\n" + "".join(f"        {_metric_code(m)},\n" for m in value) + "    )"
            else:
                rendered = pprint.pformat(_plain(value), width=width - 8, sort_dicts=False)
                rendered = rendered.replace("\n", "\n" + " " * (len(item.name) + 5))
            lines.append(f"    {item.name}={rendered},")
        lines.append(")")
        return "\n".join(lines)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightCard:
        """The card of :meth:`to_dict`'s output."""
        values = dict(data)
        values["urls"] = tuple(values.get("urls") or ())
        values["leaderboard_rows"] = tuple(values.get("leaderboard_rows") or ())
        values["metrics"] = tuple(
            CardMetric(**{**m, "interval": tuple(m["interval"]) if m.get("interval") else None})
            for m in values.get("metrics") or ()
        )
        return cls(**values)


def _metric_code(metric: CardMetric) -> str:
    args = ", ".join(f"{f.name}={_plain(getattr(metric, f.name))!r}" for f in fields(metric))
    return f"CardMetric({args})"


def _plain(value: Any) -> Any:
    """Mappings as plain dicts (a MappingProxy's repr is not code)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
