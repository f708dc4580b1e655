"""Callbacks every family shares; each works with any task through a small documented contract."""

from zoo.callbacks.checkpoint import AtomicCheckpointIO, ResumableCheckpoint, check_checkpoint_file
from zoo.callbacks.ema import EMA
from zoo.callbacks.mixup import MixupCutmix

__all__ = ["EMA", "AtomicCheckpointIO", "MixupCutmix", "ResumableCheckpoint", "check_checkpoint_file"]
