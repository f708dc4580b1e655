"""Every shipped weight card against its file (as torchvision checks its weights): checksum, loading, counts,
fields, and its headline figure reproduced on the shared data."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo.pretrained import all_cards, weights_file

CARDS = all_cards()
IDS = [c.name for c in CARDS]
# What must be on every card (notes and extra may stay empty).
REQUIRED = ("model", "tag", "filename", "sha256", "size_bytes", "urls", "signature", "metrics", "num_params",
            "weights", "recipe", "recipe_sha256", "commit", "command", "training", "data_license")  # fmt: skip


def test_cards_are_unique_and_cover_the_shipped_models() -> None:
    assert len(set(IDS)) == len(IDS)
    assert {"gcn.cora", "gat.cora", "gpt_nano.shakespeare"} <= set(IDS)


@pytest.mark.parametrize("card", CARDS, ids=IDS)
def test_card_file_checksum_loading_and_counts(card, repo: Path) -> None:
    assert all(getattr(card, name) not in (None, "", (), {}) for name in REQUIRED), card.name
    path = weights_file(card)
    assert path.stat().st_size == card.size_bytes
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card.sha256
    state = load_file(str(path))  # safetensors: no code runs on load
    model = zoo.create_model(card.model, pretrained=card.tag)
    assert sum(p.numel() for p in model.parameters()) == card.num_params
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())  # every stored weight was loaded
    assert card.model in zoo.list_models()
    assert (repo / card.recipe).is_file() and card.command.startswith(f"zoo fit --config {card.recipe}")
    assert card.urls[0].endswith(card.filename)
    for metric in card.metrics:
        assert metric.dataset and metric.split
        assert metric.interval is None or metric.interval[0] <= metric.value <= metric.interval[1]


@pytest.mark.parametrize("card", CARDS, ids=IDS)
def test_card_recipe_hash_is_the_recipe_at_its_commit(card, repo: Path) -> None:
    shown = subprocess.run(
        ["git", "-C", str(repo), "show", f"{card.commit.removesuffix('-dirty')}:{card.recipe}"],
        capture_output=True,
        check=False,
    )
    if shown.returncode != 0:
        pytest.skip(f"no git history holding {card.commit} here")
    assert hashlib.sha256(shown.stdout).hexdigest() == card.recipe_sha256


@pytest.mark.slow
@pytest.mark.parametrize(
    "card", [c for c in CARDS if c.model in ("gcn", "gat", "gpt_nano", "speedrun_net_tiny")], ids=lambda c: c.name
)
def test_card_headline_figure_is_reproduced(card, repo: Path, shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    """The recipe's own evaluation, starting from the card (task-level pretrained=), gives the card's figure."""
    from zoo.lightning_cli import ZooLightningCLI

    monkeypatch.chdir(tmp_path)
    headline = card.metrics[0]
    stage = headline.split.split(",")[0]
    cli = ZooLightningCLI(
        args=["--config", str(repo / card.recipe), "--model.init_args.pretrained", card.tag,
              "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false", "--trainer.accelerator", "cpu"],
        run=False,
    )  # fmt: skip
    evaluate = cli.trainer.test if stage == "test" else cli.trainer.validate
    measured = evaluate(cli.model, datamodule=cli.datamodule, verbose=False)[0][f"{stage}/{headline.name}"]
    assert headline.interval[0] <= measured <= headline.interval[1]
    assert measured == pytest.approx(headline.value, abs=2e-3)


@pytest.mark.heavy  # 300 samples of 50 DDIM steps judged by 5 classifiers trained for an epoch: a minute on 2 cores
def test_unet_card_shape_accuracy_is_reproduced(repo: Path, tmp_path: Path, monkeypatch) -> None:
    import sys

    from zoo.lightning_cli import ZooLightningCLI

    sys.path.insert(0, str(repo / "benchmarks"))
    from shapes_sample_accuracy import shape_accuracy

    monkeypatch.chdir(tmp_path)
    card = next(c for c in CARDS if c.name == "unet_tiny.shapes")
    args = ["--config", str(repo / card.recipe), "--model.init_args.pretrained", card.tag, "--trainer.logger", "false"]
    model = ZooLightningCLI(args=args, run=False).model.eval()
    headline = card.metrics[0]
    assert shape_accuracy(model)["sample_accuracy"] == pytest.approx(headline.value, abs=1e-4)
