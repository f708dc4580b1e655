"""Pure ``nn.Module`` definitions, one sub-package per family; nothing here imports Lightning.

Every image model follows timm's surface so one test covers them all: ``num_classes``, ``num_features``,
``forward_features(x)``, ``forward_head(x, pre_logits=False)``, ``get_classifier()`` and
``reset_classifier(num_classes)``.
"""
