"""Thin LightningModules, one per task (not per architecture); the network is injected.

Every task is a :class:`ZooTask`, whose contract (backbone, monitor, counts, FLOPs and the
:class:`InferenceSignature`) is what callbacks, export and the leaderboard rely on.
"""

from zoo.tasks.base import ZooTask
from zoo.tasks.classification import ClassificationTask, ImageClassifier, TextClassifier
from zoo.tasks.diffusion import DiffusionModel
from zoo.tasks.graph import GraphClassifier, NodeClassifier
from zoo.tasks.language_modeling import LanguageModel
from zoo.tasks.signature import InferenceSignature, TensorSpec

__all__ = [
    "ClassificationTask",
    "DiffusionModel",
    "GraphClassifier",
    "ImageClassifier",
    "InferenceSignature",
    "LanguageModel",
    "NodeClassifier",
    "TensorSpec",
    "TextClassifier",
    "ZooTask",
]
