"""Transformer family: ViTs, GPT-style language models and text encoders for classification.

ViTs for 32x32 images are built with timm, the GPTs are zoo modules, and the text encoders come from Hugging Face
``transformers``, imported only when one is built.
"""

from zoo.models.transformer import gpt, text_encoders, vit_cifar

__all__ = ["gpt", "text_encoders", "vit_cifar"]
