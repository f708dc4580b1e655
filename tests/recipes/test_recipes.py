"""Every recipe parses and trains a few steps on tiny data; a recipe added later is covered automatically."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from zoo.lightning_cli import ZooLightningCLI
from zoo.tasks import ImageClassifier

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted(
    str(p.relative_to(REPO)) for p in (REPO / "recipes").rglob("*.yaml") if not p.name.endswith(".sweep.yaml")
)

# How each data module is shrunk to tiny real data; a recipe with a data module missing here fails loudly.
TINY_DATA = {
    "zoo.data.CIFAR10DataModule": ["--data.init_args.variant", "mini", "--data.init_args.batch_size", "8"],
    "zoo.data.TextCorpusDataModule": ["--data.init_args.batch_size", "4", "--data.init_args.block_size", "32"],
    "zoo.data.PlanetoidDataModule": [],  # Cora is small: the full graph is the tiny data
    "zoo.data.MotifGraphsDataModule": ["--data.init_args.num_graphs", "60", "--data.init_args.batch_size", "8"],
    "zoo.data.ShapesDataModule": ["--data.init_args.num_train", "32", "--data.init_args.batch_size", "8"],
}
# How each task's own evaluation work is shrunk (sampling, FID); tasks missing here need none.
TINY_TASK = {
    "zoo.tasks.DiffusionModel": [
        "--model.init_args.sample_steps", "2",
        "--model.init_args.num_sample_images", "2",
        "--model.init_args.fid_num_images", "4",
    ],
}  # fmt: skip
FEW_STEPS = [
    "--trainer.max_steps", "2",
    "--trainer.limit_val_batches", "1",
    "--trainer.limit_test_batches", "1",
    "--trainer.accelerator", "cpu",
    "--trainer.devices", "1",
    "--trainer.precision", "32-true",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
    "--data.init_args.num_workers", "0",
]  # fmt: skip


def test_recipes_are_found() -> None:
    assert "recipes/quickstart.yaml" in RECIPES and len(RECIPES) >= 4


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_header_states_what_it_reached(recipe: str) -> None:
    header = (REPO / recipe).read_text().split("\n\n")[0]
    assert "Reached:" in header and f"zoo fit --config {recipe}" in header


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_runs_a_few_steps(recipe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((REPO / recipe).read_text())
    data_class, task_class = config["data"]["class_path"], config["model"]["class_path"]
    assert data_class in TINY_DATA, f"add a tiny-data override for {data_class} to TINY_DATA"
    tiny = [*FEW_STEPS, *TINY_DATA[data_class], *TINY_TASK.get(task_class, [])]
    if "teacher" in (config["model"].get("init_args") or {}):  # a distillation recipe: an untrained teacher will do
        teacher = ImageClassifier("speedrun_net_tiny", num_classes=10)
        hparams = {"_class_path": "zoo.tasks.ImageClassifier", **dict(teacher.hparams)}
        torch.save({"state_dict": teacher.state_dict(), "hyper_parameters": hparams}, tmp_path / "teacher.ckpt")
        tiny += ["--model.init_args.teacher", str(tmp_path / "teacher.ckpt")]
    cli = ZooLightningCLI(args=["fit", "--config", str(REPO / recipe), *tiny])
    assert cli.trainer.global_step == 2
    # fit ends by testing the best weights, or by validating the final ones when the data has no test split
    final = cli.trainer.callback_metrics
    assert torch.isfinite(final["test/loss"] if "test/loss" in final else final["val/loss"])
    assert list(tmp_path.glob("runs/**/checkpoints/last.ckpt"))
