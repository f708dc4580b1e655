"""Publishing a checkpoint as a card, the card as code, bad requests, and tasks built from cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.checkpoints import load_checkpoint
from zoo.errors import ConfigError
from zoo.pretrained import CardMetric, WeightCard, all_cards, get_card, weights_file
from zoo.pretrained.store import sha256_of
from zoo.tasks import NodeClassifier
from zoo.weights_command import run_weights_command


def test_publish_fills_every_field_and_prints_the_card_as_code(trained_cnn: Path, tmp_path: Path, capsys) -> None:
    from zoo.evaluation.cli import run_evaluate_command
    from zoo.provenance import zoo_checkout as _repo_root
    from zoo.publish_weights import _recipe

    run_evaluate_command(["--ckpt_path", str(trained_cnn), "--out", str(tmp_path / "eval"), "--resamples", "200"])
    loaded = load_checkpoint(trained_cnn)
    _, recipe_sha = _recipe(loaded.metadata, (loaded.metadata.environment.get("git") or {}).get("commit"), _repo_root())
    row = {"suite": "cifar10", "recipe": "recipes/quickstart.yaml", "recipe_sha256": recipe_sha, "budget": "cpu",
           "seed": 0, "git": {"commit": "0123456789abcdef"},
           "quality": {"metric": "test/acc1", "value": 0.4}}  # fmt: skip
    (tmp_path / "rows.jsonl").write_text(json.dumps(row) + "\n")
    capsys.readouterr()
    run_weights_command([
        "publish", "--ckpt_path", str(trained_cnn), "--tag", "cifar10-sample", "--out", str(tmp_path / "out"),
        "--report", str(tmp_path / "eval" / "report.json"), "--leaderboard", str(tmp_path / "rows.jsonl"),
    ])  # fmt: skip
    code = capsys.readouterr().out.split("\n", 2)[2]
    card = eval(code, {"WeightCard": WeightCard, "CardMetric": CardMetric})  # what a maintainer pastes
    assert card == WeightCard.from_dict(json.loads((tmp_path / "out" / f"{card.name}.card.json").read_text()))
    for field in ("sha256", "size_bytes", "urls", "signature", "metrics", "num_params", "flops", "weights", "recipe",
                  "recipe_sha256", "commit", "command", "training", "leaderboard_rows", "data_license"):  # fmt: skip
        assert getattr(card, field) not in (None, "", (), {}), field
    assert card.model == "speedrun_net_tiny" and card.weights == loaded.weights
    assert card.recipe == "recipes/quickstart.yaml" and str(_repo_root()) not in card.command
    assert card.leaderboard_rows == ("cifar10/quickstart/cpu/seed0@01234567",)
    assert card.metrics[0].name == "acc1" and card.metrics[0].interval is not None
    assert card.labels() == tuple(json.loads((tmp_path / "eval" / "report.json").read_text())["labels"])
    path = tmp_path / "out" / card.filename
    assert sha256_of(path) == card.sha256 and path.stat().st_size == card.size_bytes
    model = zoo.create_model("speedrun_net_tiny", weights=path)
    task = loaded.task.backbone
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), task.state_dict().values(), strict=True))


def test_cards_round_trip_through_json_and_code() -> None:
    for card in all_cards():
        assert WeightCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card
        assert eval(card.to_code(), {"WeightCard": WeightCard, "CardMetric": CardMetric}) == card


def test_bad_requests_name_what_exists() -> None:
    with pytest.raises(ConfigError, match=r"'gcn' has no weights tagged 'citeseer'; its tags: cora"):
        zoo.create_model("gcn", pretrained="citeseer")
    with pytest.raises(ConfigError, match=r"'resnet18_cifar' has no pretrained weights in zoo; models with weight "
                                          r"cards: .*gat, gcn.*timm/<name>"):  # fmt: skip
        zoo.create_model("resnet18_cifar", pretrained=True)
    with pytest.raises(ConfigError, match="not both"):
        zoo.create_model("gcn", weights="x.safetensors", pretrained="cora")
    with pytest.raises(ConfigError, match="no weights tagged 'nope'"):
        run_weights_command(["show", "gcn.nope"])


def test_weights_listing_and_show(capsys) -> None:
    run_weights_command([])
    listing = capsys.readouterr().out
    assert all(card.name in listing for card in all_cards()) and "in the package" in listing
    run_weights_command(["--json"])
    assert [c["tag"] for c in json.loads(capsys.readouterr().out)] == [c.tag for c in all_cards()]
    run_weights_command(["show", "gat.cora"])
    shown = capsys.readouterr().out
    card = get_card("gat.cora")
    assert card.sha256 in shown and card.command in shown and "95% CI" in shown


def test_a_new_class_count_keeps_the_body_and_a_fresh_head() -> None:
    card = get_card("gcn.cora")
    from safetensors.torch import load_file

    stored = load_file(str(weights_file(card)))
    task = NodeClassifier("gcn", in_channels=1433, num_classes=3, pretrained="cora")
    head = task.backbone.get_classifier()
    assert head.out_channels == 3 if hasattr(head, "out_channels") else head.weight.shape[0] == 3
    own = task.backbone.state_dict()
    kept = [k for k, v in stored.items() if own[k].shape == v.shape]
    assert kept and all(torch.equal(own[k], stored[k]) for k in kept)
    graph_x, edges = torch.randn(20, 1433), torch.randint(0, 20, (2, 60))
    loss = task(graph_x, edges).logsumexp(-1).mean()
    loss.backward()  # the new head trains with the rest
    assert all(p.grad is not None for p in head.parameters())


def test_rebuilding_a_checkpoint_does_not_fetch_the_card_it_started_from(tmp_path: Path) -> None:
    task = NodeClassifier("gcn", pretrained="cora", backbone_kwargs={"dropout": 0.1})
    hparams = {"_class_path": "zoo.tasks.NodeClassifier", **dict(task.hparams), "pretrained": "gone-by-now"}
    hparams["backbone_kwargs"] = {"dropout": 0.1, "weights": str(tmp_path / "moved.safetensors")}
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": hparams}, tmp_path / "run.ckpt")
    loaded = load_checkpoint(tmp_path / "run.ckpt")
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.task.state_dict().values(), task.state_dict().values(), strict=True)
    )


def test_a_recipe_fine_tunes_from_a_card_with_a_new_head(image_tree: Path, tmp_path: Path, monkeypatch) -> None:
    """``backbone_kwargs: {pretrained: cifar10}`` on a 3-class image folder: the CIFAR-10 body, a 3-way head."""
    import shutil

    import yaml
    from safetensors.torch import load_file

    from zoo.lightning_cli import ZooLightningCLI

    for split in ("train", "test"):
        for folder in sorted((image_tree / split).iterdir())[3:]:
            shutil.rmtree(folder)
    recipe = tmp_path / "finetune.yaml"
    recipe.write_text(yaml.safe_dump({
        "trainer": {"max_steps": 3, "limit_val_batches": 1, "enable_progress_bar": False, "logger": False,
                    "enable_model_summary": False},
        "model": {"class_path": "zoo.tasks.ImageClassifier",
                  "init_args": {"backbone": "speedrun_net_tiny", "backbone_kwargs": {"pretrained": "cifar10"}}},
        "data": {"class_path": "zoo.data.ImageFolderDataModule",
                 "init_args": {"root": str(image_tree), "image_size": 32, "batch_size": 8, "num_workers": 0}},
    }))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    built = ZooLightningCLI(args=["--config", str(recipe)], run=False).model
    stored = load_file(str(weights_file(get_card("speedrun_net_tiny.cifar10"))))
    own = built.backbone.state_dict()
    head = {k for k in own if own[k].shape != stored[k].shape}
    assert built.num_classes == 3 and head and all(k.startswith("head") or "fc" in k for k in head)
    assert all(torch.equal(own[k], v) for k, v in stored.items() if k not in head)
    cli = ZooLightningCLI(args=["fit", "--config", str(recipe), "--test_after_fit", "false"])
    assert cli.trainer.global_step == 3 and torch.isfinite(cli.trainer.callback_metrics["train/loss"])


def test_a_card_that_could_not_be_checked_is_refused() -> None:
    card = get_card("gcn.cora")
    import dataclasses

    with pytest.raises(ConfigError, match=r"gcn.cora: filename 'gcn.pt' is not a .safetensors file.*; sha256 'abc'"):
        dataclasses.replace(card, filename="gcn.pt", sha256="abc")
