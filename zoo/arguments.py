"""Argument helpers for the ``zoo`` commands' own parsers: numbers in range (refused with exit 2), and ``--``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["at_least", "split_passed_on"]


def at_least(minimum: float, kind: type = int) -> Callable[[str], Any]:
    """An argparse ``type`` that reads a number of ``kind`` and refuses one below ``minimum`` (exit 2, named)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    return parse


def split_passed_on(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` before ``--`` (the command's own options) and after it (passed on to ``zoo fit`` or the data)."""
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1 :]
    return argv, []
