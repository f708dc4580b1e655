"""Macro F1 on a long-tailed CIFAR-10: plain cross-entropy against class weights, focal loss, balanced sampling.

    python benchmarks/imbalance.py --out benchmarks/results/imbalance_cpu.jsonl [--seeds 3] [--epochs 15]

The training set is cut from the 12,000-image CIFAR-10 subset zoo ships: class ``k`` keeps
``round(1000 * 0.1 ** (k / 9))`` of its 1,000 training images (1,000 airplanes down to 100 trucks: a 10:1 long
tail, 4,085 images), and the test set is the subset's balanced 200 per class. Every setting trains the
quickstart recipe (speedrun_net_tiny, SGD, 15 epochs) on it with the same seeds, selecting the checkpoint on a
validation split held out of the long-tailed training images (as a user would have to), and is scored on the
balanced test set with ``zoo evaluate``'s figures: accuracy and macro F1 with their bootstrap intervals.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_accuracy import measured_here, write_record

from zoo.evaluation.classification import evaluate_classifier
from zoo.evaluation.predictions import collect_predictions
from zoo.lightning_cli import ZooLightningCLI

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes/quickstart.yaml"
ARCHIVE = REPO / "zoo/data/assets/cifar10-mini.tar.gz"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SETTINGS = {
    "cross_entropy": [],
    "class_weights": ["--model.init_args.class_weights", "balanced"],
    "focal": ["--model.init_args.loss", "focal", "--model.init_args.focal_gamma", "2.0"],
    "balanced_sampler": ["--data.init_args.sampler", "balanced"],
}


def long_tail_tree(target: Path) -> dict[str, int]:
    """Extract the long-tailed training tree and the balanced test tree; the training count per class."""
    keep = {name: round(1000 * 0.1 ** (k / 9)) for k, name in enumerate(CLASSES)}
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(ARCHIVE) as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            split, name, file = Path(member.name).parts
            limit = keep[name] if split == "train" else 10**6
            if taken.get((split, name), 0) < limit:
                taken[split, name] = taken.get((split, name), 0) + 1
                out = target / split / name / file
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.extractfile(member).read())  # type: ignore[union-attr]
    return keep


def run(tree: Path, folder: Path, setting: str, seed: int, epochs: int) -> dict[str, float]:
    """Train one setting with one seed; its test accuracy and macro F1 with their intervals."""
    args = [
        "fit", "--config", str(RECIPE), "--seed_everything", str(seed), "--trainer.max_epochs", str(epochs),
        "--data", "zoo.data.ImageFolderDataModule", "--data.init_args.root", str(tree),
        "--data.init_args.image_size", "32", "--data.init_args.crop_pct", "1.0", "--data.init_args.val_split", "0.1",
        "--data.init_args.mean", "[0.4914, 0.4822, 0.4465]", "--data.init_args.std", "[0.2470, 0.2435, 0.2616]",
        "--data.init_args.batch_size", "128", "--trainer.default_root_dir", str(folder / f"{setting}-{seed}"),
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--test_after_fit", "false", *SETTINGS[setting],
    ]  # fmt: skip
    cli = ZooLightningCLI(args=args)
    from zoo.checkpoints import load_checkpoint

    loaded = load_checkpoint(cli.trainer.checkpoint_callback.best_model_path)
    predictions = collect_predictions(loaded, cli.datamodule, "test")
    report = evaluate_classifier(predictions.logits, predictions.targets, predictions.labels, resamples=1000, seed=0)
    return {name: report.metrics[name].as_dict() for name in ("acc1", "f1_macro")} | {
        "recall_rarest": report.per_class[-1]["recall"]["value"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        with tempfile.TemporaryDirectory() as temporary:
            tree = Path(temporary) / "tree"
            counts = long_tail_tree(tree)
            for setting in args.settings:
                runs = [run(tree, Path(temporary) / "runs", setting, seed, args.epochs) for seed in range(args.seeds)]
                f1 = [r["f1_macro"]["value"] for r in runs]
                acc = [r["acc1"]["value"] for r in runs]
                record = {
                    "benchmark": "imbalance", "setting": setting, "train_counts": counts, "epochs": args.epochs,
                    "seeds": args.seeds, "f1_macro_mean": round(statistics.mean(f1), 4),
                    "f1_macro_std": round(statistics.pstdev(f1), 4), "acc1_mean": round(statistics.mean(acc), 4),
                    "recall_rarest_mean": round(statistics.mean(r["recall_rarest"] for r in runs), 4), "runs": runs,
                }  # fmt: skip
                sys.argv = argv
                write_record({**record, **measured_here("imbalance.py")}, args.out)
                sys.argv = argv[:1]
    finally:
        sys.argv = argv


if __name__ == "__main__":
    main()
