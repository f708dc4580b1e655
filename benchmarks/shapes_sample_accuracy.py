"""How often a class-conditional shapes diffusion model draws the shape it was asked for.

    python benchmarks/shapes_sample_accuracy.py runs/shapes/ddpm_tiny/version_0/checkpoints/last.ckpt \
        --out benchmarks/results/shapes_ddpm_cpu.jsonl

A judge (``speedrun_net_tiny``) is first trained on real shape images for one epoch and its test accuracy
reported; it then classifies ``--per_class`` samples of each class. Chance is one in three. The figure says
whether the samples have the structure of the data (a disc is round, a triangle has three corners), which a
loss value does not. ``--smoke`` runs tiny sizes for CI.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_accuracy import hardware, write_record

from zoo.data import ShapesDataModule
from zoo.data.shapes import SHAPE_CLASSES
from zoo.sample import load_diffusion_checkpoint
from zoo.tasks import ImageClassifier


def train_judge(image_size: int, num_train: int) -> tuple[ImageClassifier, float]:
    """A shapes classifier trained for one epoch, and its test accuracy."""
    data = ShapesDataModule(image_size=image_size, num_train=num_train, data_seed=1, batch_size=64, num_workers=0)
    judge = ImageClassifier(
        "speedrun_net_tiny", num_classes=len(SHAPE_CLASSES), optimizer=partial(torch.optim.AdamW, lr=3e-3)
    )
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")  # fmt: skip
    trainer.fit(judge, data)
    accuracy = trainer.test(judge, data, verbose=False)[0]["test/acc1"]
    return judge.eval(), float(accuracy)


def main() -> None:
    """Train the judge, sample each class, and record the accuracy."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--per_class", type=int, default=100)
    parser.add_argument("--sampler", default="ddim")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance_scale", type=float, default=1.0)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    args = parser.parse_args()
    started = time.perf_counter()
    model = load_diffusion_checkpoint(args.checkpoint)
    judge, judge_accuracy = train_judge(model.image_size, 200 if args.smoke else 10_000)
    per_class = 2 if args.smoke else args.per_class
    labels = torch.arange(len(SHAPE_CLASSES)).repeat_interleave(per_class)
    images = model.sample(len(labels), seed=0, sampler=args.sampler, steps=2 if args.smoke else args.steps,
                          class_labels=labels, guidance_scale=args.guidance_scale)  # fmt: skip
    with torch.no_grad():
        predicted = judge((images - 0.5) / 0.5).argmax(dim=1)
    hits = predicted == labels
    record = {
        "benchmark": "shapes_sample_accuracy",
        "checkpoint": args.checkpoint,
        "sampler": args.sampler,
        "steps": args.steps,
        "guidance_scale": args.guidance_scale,
        "sample_accuracy": round(float(hits.float().mean()), 4),
        "per_class": {name: round(float(hits[labels == i].float().mean()), 4) for i, name in enumerate(SHAPE_CLASSES)},
        "judge_test_accuracy": round(judge_accuracy, 4),
        "wall_s": round(time.perf_counter() - started, 1),
        "command": "python benchmarks/shapes_sample_accuracy.py " + " ".join(sys.argv[1:]),
        "hardware": hardware(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    }
    write_record(record, args.out)


if __name__ == "__main__":
    main()
