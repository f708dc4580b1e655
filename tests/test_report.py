"""``zoo report``: the reproduction recipe of a run, and each threat to it, on real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo.cli import main
from zoo.lightning_cli import ZooLightningCLI
from zoo.report import build_report, read_run


def _fit(image_tree: Path, *extra: str) -> Path:
    args = [
        "fit", "--model", "zoo.tasks.ImageClassifier", "--model.init_args.backbone", "speedrun_net_tiny",
        "--data", "zoo.data.ImageFolderDataModule", "--data.init_args.root", str(image_tree),
        "--data.init_args.image_size", "32", "--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0",
        "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", "--test_after_fit", "false",
        "--trainer.enable_model_summary", "false", *extra,
    ]  # fmt: skip
    cli = ZooLightningCLI(args=args)
    return Path(cli.trainer.log_dir)


def test_a_report_says_how_to_reproduce_and_flags_what_threatens_it(
    image_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # not a git repository
    run = _fit(image_tree, "--seed_everything", "3")
    report = build_report(read_run(run))
    assert report["reproduce"]["command"] == f"zoo fit --config {run / 'config.yaml'}"
    assert report["reproduce"]["seed"] == 3 and report["data_check"] == "unchanged (same content hash)"
    assert report["reproduce"]["data"]["splits"]["test"] == 40
    assert report["threats"] == ["not run from a git repository: the code that produced it is not recorded"]
    assert report["packages"] == []

    env = json.loads((run / "env.json").read_text())
    env["packages"]["torch"] = "1.13.0"
    (run / "env.json").write_text(json.dumps(env))
    next(iter((image_tree / "test" / "dog").iterdir())).unlink()
    report = build_report(read_run(run / "checkpoints" / "last.ckpt"))  # the checkpoint carries the same record
    assert report["reproduce"]["command"] == f"zoo fit --config {run.resolve() / 'config.yaml'}"
    assert any("the data changed since the run: " in t and "splits of test: 40 -> 39" in t for t in report["threats"])
    assert report["packages"] == []  # the checkpoint's own environment still says the installed torch
    report = build_report(read_run(run))
    assert [row["package"] for row in report["packages"]] == ["torch"] and report["packages"][0]["run"] == "1.13.0"

    main(["report", str(run), "--no_data_check"])
    out = capsys.readouterr().out
    assert "zoo fit --config" in out and "! 1 package version(s) differ" in out and "torch" in out
    main(["report", str(run), "--json", "--no_data_check"])
    assert json.loads(capsys.readouterr().out)["data_check"] == "not checked"


def test_an_unseeded_run_is_flagged_and_a_missing_path_named(
    image_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    run = _fit(image_tree, "--seed_everything", "false")
    threats = build_report(read_run(run), check_data=False)["threats"]
    assert any(t.startswith("unseeded") for t in threats)
    with pytest.raises(SystemExit) as stopped:
        main(["report", str(tmp_path / "nowhere")])
    assert stopped.value.code == 2 and "nowhere does not exist" in capsys.readouterr().err
