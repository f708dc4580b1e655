"""Pruning: magnitude masks (unstructured or whole channels), and removing pruned channels.

The :class:`zoo.callbacks.Prune` callback applies these masks on a schedule during training; ``zoo export``
removes the channels structured pruning zeroed, so the exported network is smaller; ``zoo prune``
(:mod:`zoo.prune`) fine-tunes a checkpoint with the callback.
"""

from zoo.pruning.masks import (
    apply_masks,
    mask_sparsity,
    remove_pruned_channels,
    structured_masks,
    unstructured_masks,
)

__all__ = ["apply_masks", "mask_sparsity", "remove_pruned_channels", "structured_masks", "unstructured_masks"]
