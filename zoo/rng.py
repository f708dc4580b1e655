"""Private random streams: run code that draws from global generators without disturbing them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["private_rng"]


@contextmanager
def private_rng(*key: int) -> Iterator[None]:
    """Seed NumPy's and torch's (CPU) global generators from ``key`` inside the block, then restore them.

    For third-party code that draws from the global generators (timm's mixup, PyG's graph generators): its
    draws become a function of ``key`` alone, and nothing else's randomness changes.
    """
    numpy_state = np.random.get_state()
    seed = np.random.SeedSequence(list(key)).generate_state(1)[0]
    with torch.random.fork_rng(devices=[]):
        np.random.seed(seed)
        torch.default_generator.manual_seed(int(seed))
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
