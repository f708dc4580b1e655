"""Callbacks every family shares; each works with any task through a small documented contract."""

from zoo.callbacks.ema import EMA
from zoo.callbacks.mixup import MixupCutmix

__all__ = ["EMA", "MixupCutmix"]
