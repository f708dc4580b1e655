"""Callbacks every family shares; each works with any task through a small documented contract."""

from zoo.callbacks.checkpoint import AtomicCheckpointIO, ResumableCheckpoint, check_checkpoint_file
from zoo.callbacks.diffusion import DiffusionFID, DiffusionSampleGrid
from zoo.callbacks.ema import EMA
from zoo.callbacks.finetuning import FreezeBackbone
from zoo.callbacks.guards import NonFiniteLossError, StopOnNonFiniteLoss
from zoo.callbacks.metadata import CheckpointMetadata
from zoo.callbacks.mixup import MixupCutmix
from zoo.callbacks.progress import ZooProgressBar
from zoo.callbacks.prune import Prune
from zoo.callbacks.run_lock import RunFolderLock
from zoo.callbacks.throughput import ThroughputMonitor

__all__ = [
    "EMA",
    "AtomicCheckpointIO",
    "CheckpointMetadata",
    "DiffusionFID",
    "DiffusionSampleGrid",
    "FreezeBackbone",
    "MixupCutmix",
    "NonFiniteLossError",
    "Prune",
    "ResumableCheckpoint",
    "RunFolderLock",
    "StopOnNonFiniteLoss",
    "ThroughputMonitor",
    "ZooProgressBar",
    "check_checkpoint_file",
]
