"""Thin LightningModules, one per task (not per architecture); the network is injected."""

from zoo.tasks.classification import ImageClassifier

__all__ = ["ImageClassifier"]
