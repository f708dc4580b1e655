"""A diffusion model's FID with an interval: the Frechet distance of several independent sample sets.

One FID is one draw: another seed gives another sample and another value. ``fid_over_sample_sets`` draws
``sets`` sample sets of ``num_images`` images (seeds ``seed``, ``seed + 1``, ...), measures each against the
same real images (whose features are computed once), and reports the mean with its Student-t interval over the
sets, and every set's value. The features are the task's (``fid_features``): zoo's CIFAR-10 classifier by
default, logged as ``fid_zoo_classifier`` (not the standard FID), or Inception-v3 from a local weights file.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from zoo.errors import UsageError
from zoo.stats import t_interval

__all__ = ["fid_over_sample_sets"]


def fid_over_sample_sets(
    loaded: Any, data: Any, split: str = "test", sets: int = 5, num_images: int = 500, steps: int | None = None,
    features: str | None = None, seed: int = 0, level: float = 0.95, limit_batches: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """FID of ``sets`` sample sets against ``split`` of the data: the values, their mean and its interval.

    Raises:
        UsageError: For fewer than two sets (no interval), or a data module without the split.
    """
    from lightning.pytorch.utilities import move_data_to_device

    from zoo.metrics.fid import build_fid

    if sets < 2:
        raise UsageError(f"--sample_sets {sets}: an interval needs at least 2 sample sets")
    task = loaded.task
    device = next(task.parameters()).device
    metric, name = build_fid(features if features is not None else task.fid_features, in_chans=task.in_chans)
    metric = metric.to(device)
    metric.reset_real_features = False  # the real side is measured once, for every sample set
    from zoo.evaluation.predictions import split_loader

    loader = split_loader(data, split)
    real = 0
    with torch.inference_mode():
        for index, batch in enumerate(loader):
            if limit_batches is not None and index >= limit_batches:
                break
            images = task.images_in_unit_range(move_data_to_device(batch, device))
            metric.update(images, real=True)
            real += images.shape[0]
    values = []
    for offset in range(sets):
        metric.reset()
        fake = task.sample(num_images, seed=seed + offset, steps=steps)
        for start in range(0, num_images, 256):
            metric.update(fake[start : start + 256], real=False)
        values.append(float(metric.compute()))
    low, high = t_interval(values, level) or (float("nan"), float("nan"))
    return {
        "metric": name,
        "split": split,
        "real_images": real,
        "sample_sets": sets,
        "images_per_set": num_images,
        "steps": steps if steps is not None else task.sample_steps,
        "seeds": list(range(seed, seed + sets)),
        "values": [round(v, 6) for v in values],
        "mean": round(statistics.mean(values), 6),
        "interval": [round(low, 6), round(high, 6)],
        "level": level,
    }
