from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from zoo.data import CIFAR10DataModule
from zoo.data.sampling import AugmentedDataset, ResumableSampler, sample_seed


def test_sampler_order_is_a_function_of_seed_and_epoch_and_shards_disjointly() -> None:
    data = TensorDataset(torch.arange(10))
    sampler = ResumableSampler(data, num_replicas=1, rank=0, seed=3)
    sampler.set_epoch(2)
    keys = list(sampler)
    assert {epoch for epoch, _ in keys} == {2} and sorted(i for _, i in keys) == list(range(10))
    again = ResumableSampler(data, num_replicas=1, rank=0, seed=3)
    again.set_epoch(2)
    assert list(again) == keys
    again.set_epoch(3)
    assert list(again) != keys
    shards = [list(ResumableSampler(data, num_replicas=2, rank=r, seed=3)) for r in (0, 1)]
    assert not {i for _, i in shards[0]} & {i for _, i in shards[1]}


def test_resume_skips_the_samples_done_in_that_epoch_only() -> None:
    data = TensorDataset(torch.arange(10))
    straight = ResumableSampler(data, num_replicas=1, rank=0)
    straight.set_epoch(1)
    full = list(straight)
    resumed = ResumableSampler(data, num_replicas=1, rank=0)
    resumed.resume_from(epoch=1, samples_done=4)
    assert list(resumed) == full[4:] and len(resumed) == 10
    assert list(resumed) == full  # the skip applies to the first iteration after the resume only


def test_augmentation_is_fixed_by_seed_epoch_and_index_and_leaves_global_rng() -> None:
    base = TensorDataset(torch.zeros(4, 3), torch.arange(4))
    noisy = AugmentedDataset(base, lambda x: x + torch.rand(3), seed=7)
    state = torch.get_rng_state()
    first, label = noisy[(0, 2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(noisy[(0, 2)][0], first) and label == 2
    assert not torch.equal(noisy[(1, 2)][0], first) and not torch.equal(noisy[(0, 3)][0], first)
    assert sample_seed(7, 0, 2) != sample_seed(7, 2, 0)


def test_training_batches_do_not_depend_on_the_number_of_workers() -> None:
    def first_batches(workers: int) -> list[torch.Tensor]:
        data = CIFAR10DataModule(variant="mini", batch_size=8, num_workers=workers, seed=5)
        data.setup()
        loader = data.train_dataloader()
        loader.sampler.set_epoch(1)
        batches = []
        for images, _ in loader:
            batches.append(images)
            if len(batches) == 3:
                break
        return batches

    for a, b in zip(first_batches(0), first_batches(2), strict=True):
        assert torch.equal(a, b)
