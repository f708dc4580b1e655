"""Pretrained weights as data: weight cards, ``pretrained=`` for zoo's own models, downloads and publishing.

``zoo.create_model("speedrun_net_tiny", pretrained="cifar10")`` finds the card
``speedrun_net_tiny.cifar10`` (:mod:`zoo.pretrained.cards`), gets its file (:func:`weights_file`: package,
cache, mirror, URLs; always checksummed) and loads it; ``pretrained=True`` takes the model's first card.
:func:`list_pretrained` and ``zoo weights`` list the cards, ``zoo weights show NAME.TAG`` prints one, and
``zoo weights publish`` turns a checkpoint into a safetensors file and the card to paste into ``cards.py``.
"""

from __future__ import annotations

import fnmatch

from zoo.errors import ConfigError
from zoo.pretrained.card import CardMetric, WeightCard
from zoo.pretrained.store import ChecksumError, WeightsUnavailableError, sha256_of, weights_file

__all__ = [
    "CardMetric",
    "ChecksumError",
    "WeightCard",
    "WeightsUnavailableError",
    "all_cards",
    "get_card",
    "list_pretrained",
    "sha256_of",
    "weights_file",
]


def all_cards() -> tuple[WeightCard, ...]:
    """Every card zoo knows, in the order of :mod:`zoo.pretrained.cards`."""
    from zoo.pretrained.cards import CARDS

    return CARDS


def list_pretrained(pattern: str = "*") -> list[str]:
    """Names (``"<model>.<tag>"``) of the cards whose name or model matches the shell-style ``pattern``."""
    return [
        c.name for c in all_cards() if fnmatch.fnmatchcase(c.name, pattern) or fnmatch.fnmatchcase(c.model, pattern)
    ]


def get_card(model: str, tag: str | bool = True) -> WeightCard:
    """The card of ``model`` tagged ``tag``; ``True`` picks the model's first (default) card.

    ``model`` may also be a full card name, ``"<model>.<tag>"``, with ``tag`` left at ``True``.

    Raises:
        ConfigError: If the model has no cards (the message lists the models that do) or no card with that
            tag (the message lists its tags).
    """
    cards = all_cards()
    if tag is True and model not in {c.model for c in cards} and "." in model:
        model, tag = model.rsplit(".", 1)
    own = [c for c in cards if c.model == model]
    if not own:
        with_cards = sorted({c.model for c in cards})
        hint = (
            " For a timm model, name it 'timm/<name>' and timm's own pretrained weights load."
            if "/" not in model
            else ""
        )
        raise ConfigError(
            f"{model!r} has no pretrained weights in zoo; models with weight cards: {', '.join(with_cards)} "
            f"(`zoo weights`).{hint}"
        )
    if tag is True:
        return own[0]
    match = next((c for c in own if c.tag == tag), None)
    if match is None:
        raise ConfigError(
            f"{model!r} has no weights tagged {tag!r}; its tags: {', '.join(c.tag for c in own)} "
            f"(`zoo weights show {own[0].name}`)"
        )
    return match
