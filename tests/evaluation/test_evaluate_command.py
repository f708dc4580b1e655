"""``zoo evaluate`` and ``zoo compare`` on real Cora GCN checkpoints trained by ``zoo fit``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from zoo.checkpoints import load_checkpoint
from zoo.cli import main
from zoo.errors import ConfigError, UsageError
from zoo.evaluation.cli import run_compare_command, run_evaluate_command
from zoo.lightning_cli import ZooLightningCLI
from zoo.tasks import DiffusionModel

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def cora_runs(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The GCN recipe for 60 epochs, and for 3 (clearly worse): their best checkpoints and test accuracies."""
    root = tmp_path_factory.mktemp("cora_runs")
    runs: dict[str, object] = {"root": root}
    for name, epochs in (("good", 60), ("poor", 3)):
        cli = ZooLightningCLI(args=["fit", "--config", str(repo / "recipes/cora/gcn.yaml"), "--trainer.max_epochs",
                                    str(epochs), "--trainer.default_root_dir", str(root / name), *QUIET])  # fmt: skip
        runs[name] = Path(cli.trainer.checkpoint_callback.best_model_path)
        runs[f"{name}_test_acc1"] = float(cli.trainer.callback_metrics["test/acc1"])
    return runs


def test_evaluate_writes_the_report_and_its_accuracy_is_what_zoo_fit_tested(
    cora_runs: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = cora_runs["good"]
    assert isinstance(checkpoint, Path)
    main(["evaluate", "--ckpt_path", str(checkpoint), "--resamples", "200"])  # the recipe the checkpoint recorded
    out = checkpoint.parent.parent / "evaluation" / f"{checkpoint.stem}-test"
    report = json.loads((out / "report.json").read_text())
    assert report["examples"] == 1000 and report["split"] == "test"  # Planetoid's standard test nodes
    acc1 = report["metrics"]["acc1"]
    assert acc1["value"] == pytest.approx(cora_runs["good_test_acc1"], abs=1e-6)
    assert acc1["low"] < acc1["value"] < acc1["high"] and acc1["high"] - acc1["low"] < 0.07
    assert len(report["per_class"]) == 7 and sum(row["support"] for row in report["per_class"]) == 1000
    assert sum(map(sum, report["confusion"])) == 1000
    assert report["bootstrap"] == {"resamples": 200, "seed": 0, "level": 0.95}
    for image in ("confusion.png", "reliability.png"):
        assert (out / image).read_bytes()[:4] == b"\x89PNG"
    assert "| macro F1 |" in (out / "report.md").read_text()
    assert "expected calibration error (15 bins)" in capsys.readouterr().out


def test_calibrate_fits_a_temperature_and_writes_a_calibrated_copy(
    cora_runs: dict[str, object], tmp_path: Path
) -> None:
    checkpoint = cora_runs["good"]
    assert isinstance(checkpoint, Path)
    before = checkpoint.read_bytes()
    main(["evaluate", "--ckpt_path", str(checkpoint), "--calibrate", "--out", str(tmp_path), "--resamples", "100"])
    assert checkpoint.read_bytes() == before  # the user's checkpoint is untouched
    report = json.loads((tmp_path / "report.json").read_text())
    calibration = report["calibration"]
    assert calibration["fitted_on"] == "val" and calibration["validation_examples"] == 500
    assert calibration["after"]["nll"]["value"] <= calibration["before"]["nll"]["value"] + 0.02
    calibrated = load_checkpoint(tmp_path / "calibrated.ckpt")
    assert calibrated.metadata.calibration["temperature"] == pytest.approx(calibration["temperature"])
    task = calibrated.task
    assert task.temperature == pytest.approx(calibration["temperature"]) and task.temperature != 1.0
    logits = torch.randn(4, 7)
    assert torch.allclose(task.probabilities(logits), (logits / task.temperature).softmax(-1))


def test_compare_finds_the_longer_run_better(cora_runs: dict[str, object], tmp_path: Path, capsys) -> None:
    main(["compare", str(cora_runs["poor"]), str(cora_runs["good"]), "--out", str(tmp_path), "--resamples", "300"])
    result = json.loads((tmp_path / "compare.json").read_text())
    assert result["accuracy_b"] > result["accuracy_a"] and result["p_value"] < 0.001
    assert result["verdict"].startswith(f"{cora_runs['good']} is better than {cora_runs['poor']} by ")
    assert result["verdict"] in capsys.readouterr().out


def test_what_zoo_evaluate_cannot_score_is_named(cora_runs: dict[str, object], tmp_path: Path, repo: Path) -> None:
    diffusion = DiffusionModel("unet_tiny", image_size=16, num_classes=3, conditional=True)
    path = tmp_path / "ddpm.ckpt"
    hparams = {"_class_path": "zoo.tasks.DiffusionModel", **dict(diffusion.hparams)}
    torch.save({"state_dict": diffusion.state_dict(), "hyper_parameters": hparams}, path)
    with pytest.raises(UsageError, match="holds a DiffusionModel; zoo evaluate measures classifiers"):
        run_compare_command([str(path), str(path)])  # per-class figures and McNemar need classes
    with pytest.raises(SystemExit):  # "--calibrate, --corruptions and --ood are for classifiers"
        run_evaluate_command(
            ["--ckpt_path", str(path), "--calibrate", "--config", str(repo / "recipes/shapes/ddpm_tiny.yaml")]
        )
    checkpoint = cora_runs["good"]
    assert isinstance(checkpoint, Path)
    bare = tmp_path / "bare.ckpt"
    raw = torch.load(checkpoint, weights_only=False)
    raw.pop("zoo_metadata")
    torch.save(raw, bare)
    with pytest.raises(ConfigError, match=r"records no recipe .* pass the one it was trained with: --config"):
        run_evaluate_command(["--ckpt_path", str(bare)])
    with pytest.raises(ConfigError, match="the data section does not build"):
        run_evaluate_command(["--ckpt_path", str(checkpoint), "--", "--data.init_args.no_such_key", "1"])
    with pytest.raises(SystemExit):  # argparse: "--resamples must be at least 1"
        run_evaluate_command(["--ckpt_path", str(checkpoint), "--resamples", "0"])


def test_a_language_model_gets_perplexity_and_bits_per_byte_with_block_intervals(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    args = ["fit", "--config", str(repo / "recipes/shakespeare/gpt_nano.yaml"), "--trainer.max_steps", "5",
            "--trainer.limit_val_batches", "3", "--trainer.default_root_dir", str(tmp_path), "--test_after_fit",
            "false", *QUIET]  # fmt: skip
    cli = ZooLightningCLI(args=args)
    checkpoint = cli.trainer.checkpoint_callback.last_model_path
    validated = cli.trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=checkpoint, verbose=False)[0]
    main(["evaluate", "--ckpt_path", checkpoint, "--limit_batches", "3", "--resamples", "200",
          "--out", str(tmp_path / "eval")])  # fmt: skip
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    figures = report["metrics"]
    assert report["split"] == "val" and report["bootstrap"]["unit"] == "block"
    assert figures["loss"]["value"] == pytest.approx(validated["val/loss"], rel=1e-4)
    assert figures["perplexity"]["value"] == pytest.approx(math.exp(figures["loss"]["value"]), rel=1e-6)
    assert figures["bits_per_token"]["value"] == pytest.approx(figures["loss"]["value"] / math.log(2), rel=1e-6)
    assert figures["bits_per_byte"]["value"] == pytest.approx(figures["bits_per_token"]["value"], rel=1e-6)  # chars
    assert figures["loss"]["low"] < figures["loss"]["value"] < figures["loss"]["high"]
    assert "perplexity" in capsys.readouterr().out


def test_explain_a_node_draws_its_important_neighbourhood(cora_runs: dict[str, object], tmp_path: Path) -> None:
    from torch_geometric.utils import k_hop_subgraph

    from zoo.data import PlanetoidDataModule
    from zoo.evaluation.explain import run_explain_command

    checkpoint = str(cora_runs["good"])
    run_explain_command(["--ckpt_path", checkpoint, "--node", "1701", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "node1701.integrated_gradients.json").read_text())
    graph = PlanetoidDataModule(name="Cora").graph
    near, _, _, _ = k_hop_subgraph(1701, 2, graph.edge_index)  # the GCN's two layers read two hops
    assert result["edges"] and all(s in near.tolist() and t in near.tolist() for s, t, _ in result["edges"])
    assert result["true"] == str(int(graph.y[1701])) and len(result["features"]) == 10
    assert (tmp_path / "node1701.integrated_gradients.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UsageError, match="--node 99999: the graph has nodes 0 to 2707"):
        run_explain_command(["--ckpt_path", checkpoint, "--node", "99999", "--out", str(tmp_path)])


def test_a_diffusion_model_gets_its_fid_with_an_interval_over_sample_sets(repo: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    diffusion = DiffusionModel("unet_tiny", image_size=16, num_classes=3, conditional=True, sample_steps=2)
    path = tmp_path / "ddpm.ckpt"
    hparams = {"_class_path": "zoo.tasks.DiffusionModel", **dict(diffusion.hparams)}
    torch.save({"state_dict": diffusion.state_dict(), "hyper_parameters": hparams}, path)
    args = ["--ckpt_path", str(path), "--config", str(repo / "recipes/shapes/ddpm_tiny.yaml"), "--sample_sets", "3",
            "--num_images", "16", "--limit_batches", "1", "--out", str(tmp_path / "eval")]  # fmt: skip
    run_evaluate_command(args)
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["metric"] == "fid_zoo_classifier" and report["sample_sets"] == 3 and report["seeds"] == [0, 1, 2]
    values = report["values"]
    assert len(values) == 3 and all(math.isfinite(v) and v > 0 for v in values) and len(set(values)) == 3
    assert report["interval"][0] < report["mean"] < report["interval"][1]
    assert report["mean"] == pytest.approx(sum(values) / 3, abs=1e-5)
    run_evaluate_command([*args[:-1], str(tmp_path / "again")])
    assert json.loads((tmp_path / "again" / "report.json").read_text())["values"] == values  # seeded
