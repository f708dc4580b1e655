"""The real-versus-real floor of an FID: CIFAR-10 test images against training images.

    python benchmarks/fid_floor.py --out benchmarks/results/fid_floor_cpu.jsonl [--features inception:PATH]

No generator can be expected to come closer to the test set than another sample of real images does, so
this is the figure to read a diffusion model's FID against. The default features are zoo's offline ones
(``fid_zoo_classifier``, see docs/pages/diffusion.md), not the standard Inception FID. ``--smoke`` uses the
CIFAR-10 subset shipped with zoo (for CI).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_accuracy import hardware, write_record

from zoo.data import CIFAR10DataModule
from zoo.metrics.fid import build_fid


def _unit_images(images_hwc: torch.Tensor) -> torch.Tensor:
    return images_hwc.permute(0, 3, 1, 2).float() / 255


def main() -> None:
    """Compute and record the floor."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="JSON-lines file the record is appended to")
    parser.add_argument("--features", default=None, help="as DiffusionModel's fid_features (default: zoo's)")
    parser.add_argument("--smoke", action="store_true", help="the shipped 12,000-image subset, for CI")
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument(
        "--num_fake",
        type=int,
        default=None,
        help="compare only this many random training images (as many as a "
        "generator's sample), since the Frechet distance of small samples is biased upwards",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    data = CIFAR10DataModule(variant="mini" if args.smoke else "full")
    arrays = data._read(data._find_source())
    metric, name = build_fid(args.features)
    for split, real in (("test", True), ("train", False)):
        images = torch.from_numpy(arrays[split].images)
        if not real and args.num_fake is not None:
            chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[: args.num_fake]
            images = images[chosen]
        for start in range(0, len(images), args.batch_size):
            metric.update(_unit_images(images[start : start + args.batch_size]), real=real)
    record = {
        "benchmark": "fid_floor",
        "metric": name,
        "value": round(float(metric.compute()), 4),
        "real": f"CIFAR-10 test ({len(arrays['test'])} images)",
        "fake": f"CIFAR-10 train ({args.num_fake or len(arrays['train'])} images)",
        "variant": data.variant,
        "wall_s": round(time.perf_counter() - started, 1),
        "command": "python benchmarks/fid_floor.py " + " ".join(sys.argv[1:]),
        "hardware": hardware(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    write_record(record, args.out)


if __name__ == "__main__":
    main()
