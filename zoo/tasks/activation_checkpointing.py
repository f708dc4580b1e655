"""Activation checkpointing: keep fewer activations for the backward pass and recompute the rest.

Every family's own library has a switch for it, and zoo only finds and throws the right one: timm's
``set_grad_checkpointing`` (timm models, zoo's CIFAR ResNets and ViTs, and zoo's GPT, which implements the same
method), transformers' ``gradient_checkpointing_enable`` (the ``hf/`` and from-scratch text encoders) and
diffusers' ``enable_gradient_checkpointing`` (the UNets). Memory then grows with the number of blocks rather
than with every activation inside them, at the price of a second forward pass of each block during the
backward pass: on the 2-core CPU, ``gpt_mini`` at 16 x 256 tokens peaked at 1.67 GB instead of 2.48 GB with
1.55x the step time, ``vit_small_cifar`` at 64 images 1.75 GB instead of 2.54 GB with 1.28x
(``benchmarks/activation_checkpointing.py``).
"""

from __future__ import annotations

from torch import nn

from zoo.errors import ConfigError

__all__ = ["enable_activation_checkpointing"]

# Method -> how to call it; the first module (in ``modules()`` order, outermost first) that has one is used.
_SWITCHES = (
    ("set_grad_checkpointing", lambda module: module.set_grad_checkpointing(True)),
    ("gradient_checkpointing_enable", lambda module: module.gradient_checkpointing_enable()),
    ("enable_gradient_checkpointing", lambda module: module.enable_gradient_checkpointing()),
)


def enable_activation_checkpointing(backbone: nn.Module, name: str) -> None:
    """Switch on the backbone's own activation checkpointing.

    Args:
        backbone: The network.
        name: Its registry name, for the error message.

    Raises:
        ConfigError: If neither the network nor any of its submodules has a checkpointing switch.
    """
    for module in backbone.modules():
        for method, switch in _SWITCHES:
            if callable(getattr(module, method, None)):
                switch(module)
                return
    raise ConfigError(
        f"activation_checkpointing: {name!r} has no checkpointing switch (timm's set_grad_checkpointing, "
        "transformers' gradient_checkpointing_enable or diffusers' enable_gradient_checkpointing); the CNNs "
        "and transformers of timm, zoo's GPTs, text encoders and UNets have one"
    )
