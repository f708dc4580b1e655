"""The environment every run records: in ``env.json``, in each checkpoint, and what a dirty tree looks like."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from zoo.lightning_cli import ZooLightningCLI
from zoo.provenance import run_environment

FIELDS = {"created", "command", "cwd", "seed", "git", "zoo", "python", "platform", "hostname", "hardware", "torch",
          "packages", "variables"}  # fmt: skip


def _git(repo: Path, *args: str) -> None:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args]
    subprocess.run(command, cwd=repo, check=True, capture_output=True)


def test_a_dirty_tree_is_dirty_with_a_hash_of_its_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "train.py").write_text("lr = 0.1\n")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "start")
    clean = run_environment(seed=3, argv=["zoo", "fit"], repo=tmp_path / "sub")  # any folder of the repository
    assert clean["git"]["dirty"] is False and clean["git"]["diff_sha256"] is None
    assert clean["git"]["branch"] == "main" and len(clean["git"]["commit"]) == 40
    (tmp_path / "train.py").write_text("lr = 0.2\n")
    first = run_environment(repo=tmp_path / "sub")["git"]
    (tmp_path / "train.py").write_text("lr = 0.3\n")
    second = run_environment(repo=tmp_path)["git"]
    assert first["dirty"] is second["dirty"] is True
    assert first["diff_sha256"] != second["diff_sha256"] and len(first["diff_sha256"]) == 64

    monkeypatch.setenv("ZOO_DATA", "/data")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("ZOO_API_TOKEN", "secret")
    environment = run_environment(seed=3, argv=["zoo", "fit", "--config", "a b.yaml"], repo=tmp_path)
    assert set(environment) == FIELDS
    assert environment["command"] == "zoo fit --config 'a b.yaml'" and environment["seed"] == 3
    assert environment["variables"]["ZOO_DATA"] == "/data" and environment["variables"]["OMP_NUM_THREADS"] == "2"
    assert "ZOO_API_TOKEN" not in environment["variables"]
    assert environment["packages"]["torch"] and environment["packages"]["lightning"]
    assert environment["torch"]["version"] == torch.__version__
    assert {"cpu", "cpu_model", "cpu_count", "cpu_threads", "memory_gb"} <= set(environment["hardware"])
    assert environment["zoo"]["version"]


def test_every_run_writes_env_json_and_every_checkpoint_carries_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo: Path, quick_fit: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(repo / "recipes/quickstart.yaml"), *quick_fit, "--test_after_fit", "false",
            "--trainer.limit_train_batches", "2", "--trainer.max_epochs", "1", "--seed_everything", "7"]  # fmt: skip
    ZooLightningCLI(args=args)
    run = tmp_path / "runs" / "quickstart" / "version_0"
    environment = json.loads((run / "env.json").read_text())
    assert set(environment) == FIELDS and environment["seed"] == 7
    head = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=repo, text=True).strip()
    assert environment["git"]["commit"] == head  # the repository of the recipe
    for checkpoint in (run / "checkpoints").glob("*.ckpt"):
        assert torch.load(checkpoint, weights_only=True)["zoo_metadata"]["environment"] == environment
