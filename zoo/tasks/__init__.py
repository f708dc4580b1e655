"""Thin LightningModules, one per task (not per architecture); the network is injected."""

from zoo.tasks.classification import ImageClassifier, TextClassifier
from zoo.tasks.diffusion import DiffusionModel
from zoo.tasks.graph import GraphClassifier, NodeClassifier
from zoo.tasks.language_modeling import LanguageModel

__all__ = ["DiffusionModel", "GraphClassifier", "ImageClassifier", "LanguageModel", "NodeClassifier", "TextClassifier"]
