"""Sample order and augmentation randomness that survive a mid-epoch resume.

A resumed run reproduces an uninterrupted one exactly only if three things are functions of the run's seed
and position alone, not of process history:

* the order of the training samples: :class:`ResumableSampler` draws each epoch's permutation from
  ``(seed, epoch)`` (as ``DistributedSampler`` does, whose sharding it keeps) and, after a resume, skips the
  samples the interrupted run had already trained on;
* the augmentation of each sample: :class:`AugmentedDataset` runs the transform on a private random state
  seeded by ``(seed, epoch, index)``, so it does not depend on which worker loads the sample, how many workers
  there are, or what the global random state holds;
* where the loader stands: :class:`ResumableDataLoader` implements Lightning's stateful-loader interface
  (``state_dict``/``load_state_dict``), so the position is saved with every checkpoint and restored before
  the resumed epoch starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from zoo.data.fingerprint import SplitContent, content_of

__all__ = ["AugmentedDataset", "ResumableDataLoader", "ResumableSampler", "sample_seed"]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample of one epoch, well mixed across all three inputs."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that yields ``(epoch, index)`` keys and can skip into an epoch.

    Being a ``DistributedSampler``, Lightning neither wraps nor replaces it under DDP and calls its
    ``set_epoch`` at the start of every epoch. With one process, pass ``num_replicas=1, rank=0``.

    With ``weights`` (one per sample) each epoch instead draws as many samples, with replacement, with
    probabilities proportional to them (a balanced sampler gives each sample ``1 / its class's count``); the
    draw comes from a generator seeded by ``(seed, epoch)``, so it is as resumable as the permutation, and is
    sharded across ranks the same way.

    Yields:
        ``(epoch, index)`` pairs; :class:`AugmentedDataset` uses the epoch to seed augmentation.
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int,
        rank: int,
        shuffle: bool = True,
        seed: int = 0,
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self._resume_epoch: int | None = None
        self._resume_skip = 0

    def _epoch_indices(self) -> list[int]:
        if self.weights is None:
            return list(super().__iter__())
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.total_size, replacement=True, generator=generator).tolist()
        return drawn[self.rank : self.total_size : self.num_replicas]

    def resume_from(self, epoch: int, samples_done: int) -> None:
        """Skip the first ``samples_done`` samples (of this rank) when epoch ``epoch`` is iterated.

        Also sets the epoch: Lightning creates the resumed epoch's iterator (and worker processes prefetch from
        it) before it calls ``set_epoch``.
        """
        self._resume_epoch, self._resume_skip = epoch, samples_done
        self.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = self._epoch_indices()
        skip = 0
        if self._resume_epoch == self.epoch:
            skip, self._resume_epoch = self._resume_skip, None  # only the first iteration after the resume
        return iter([(self.epoch, index) for index in indices[skip:]])


class ResumableDataLoader(DataLoader):
    """A training ``DataLoader`` whose position is part of Lightning checkpoints.

    Args:
        dataset: Map-style dataset accepting ``(epoch, index)`` keys.
        sampler: The :class:`ResumableSampler` that orders it.
        progress: Returns ``(epoch, batches trained in that epoch)``; the data module reads it from the
            trainer's loop, which knows how many batches were trained rather than merely prefetched.
        **kwargs: Any other ``DataLoader`` argument.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        sampler: ResumableSampler,
        progress: Callable[[], tuple[int, int]],
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._progress = progress

    def state_dict(self) -> dict[str, int]:
        """Where training stands: the epoch and the samples of it this rank has trained on."""
        epoch, batches = self._progress()
        return {"epoch": epoch, "samples_done": batches * (self.batch_size or 1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Make the next iteration of ``state["epoch"]`` start after the samples already trained on."""
        self.sampler.resume_from(state["epoch"], state["samples_done"])


class AugmentedDataset(Dataset):
    """Apply a transform to ``(sample, label)`` pairs of another dataset, with per-sample seeding.

    Keys may be plain indices (evaluation) or ``(epoch, index)`` pairs from :class:`ResumableSampler`. For
    a pair, the transform runs under ``torch.random.fork_rng`` seeded with :func:`sample_seed`, so the
    augmentation of a sample is fixed by ``(seed, epoch, index)`` and the global random state is untouched.

    Args:
        base: Dataset returning ``(sample, label)``.
        transform: Applied to the sample.
        seed: Seed of the augmentation.
    """

    def __init__(self, base: Dataset, transform: Callable[[Any], torch.Tensor], seed: int = 0) -> None:
        self.base = base
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def content(self) -> SplitContent | None:
        """The content of the underlying dataset (the transform is the recipe's, not the data's)."""
        return content_of(self.base)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, Any]:
        if isinstance(key, tuple):
            epoch, index = key
            sample, label = self.base[index]
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(sample_seed(self.seed, epoch, index))
                return self.transform(sample), label
        sample, label = self.base[key]
        return self.transform(sample), label
