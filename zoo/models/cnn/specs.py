"""Registry settings shared by the CIFAR-sized CNNs."""

from zoo.registry import InputSpec

CIFAR_CLASSIFIER = {
    "family": "cnn",
    "tasks": ("image_classification",),
    "input_spec": InputSpec((3, 32, 32)),
    "defaults": {"num_classes": 10},
}
