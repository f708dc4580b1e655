"""Lightning data modules and the dataset readers they use.

Every data module reads under ``root``, defaulting to ``$ZOO_DATA`` and then ``~/.cache/zoo``, and writes
derived files only under ``$ZOO_CACHE`` (default ``~/.cache/zoo``); see :mod:`zoo.data.paths`.
"""

from zoo.data.base import ZooDataModule
from zoo.data.facts import DataFacts
from zoo.data.graph import GraphClassificationDataModule, MotifGraphsDataModule, PlanetoidDataModule, TUDataModule
from zoo.data.paths import cache_dir, data_root
from zoo.data.shapes import ShapesDataModule
from zoo.data.synthetic import SyntheticGraphDataModule, SyntheticImageDataModule, SyntheticTokenDataModule
from zoo.data.text import TextCorpusDataModule
from zoo.data.text_classification import TextClassificationDataModule
from zoo.data.vision import CIFAR10DataModule, ImageFolderDataModule, VisionDataModule

__all__ = [
    "CIFAR10DataModule",
    "DataFacts",
    "GraphClassificationDataModule",
    "ImageFolderDataModule",
    "MotifGraphsDataModule",
    "PlanetoidDataModule",
    "ShapesDataModule",
    "SyntheticGraphDataModule",
    "SyntheticImageDataModule",
    "SyntheticTokenDataModule",
    "TUDataModule",
    "TextClassificationDataModule",
    "TextCorpusDataModule",
    "VisionDataModule",
    "ZooDataModule",
    "cache_dir",
    "data_root",
]
