"""Transformer family: ViTs for 32x32 images (built with timm) and GPT-style language models (zoo modules).

Text encoders for classification come from Hugging Face ``transformers`` and are built by
``zoo.tasks.TextClassifier``; they are imported only when such a task is created.
"""

from zoo.models.transformer import gpt, vit_cifar

__all__ = ["gpt", "vit_cifar"]
