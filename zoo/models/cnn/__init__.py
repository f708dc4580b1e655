"""CNN family: zoo-native CIFAR networks (registered on import) plus any timm model as ``timm/<name>``."""

from zoo.models.cnn import resnet_cifar, speedrun

__all__ = ["resnet_cifar", "speedrun"]
