"""Tiny real tasks and data for callback tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zoo.tasks import ImageClassifier


class TinyConvNet(nn.Sequential):
    """conv -> BatchNorm -> ReLU -> pool -> linear: small enough to replay by hand, with BN buffers."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__(
            nn.Conv2d(1, 4, 3),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, num_classes),
        )
        self.num_classes = num_classes


@pytest.fixture
def tiny_task() -> ImageClassifier:
    torch.manual_seed(0)
    return ImageClassifier(TinyConvNet(), in_chans=1, optimizer=lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9))


@pytest.fixture
def tiny_loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(16, 1, 8, 8, generator=generator)
    labels = torch.randint(0, 3, (16,), generator=generator)
    return DataLoader(TensorDataset(images, labels), batch_size=4)
