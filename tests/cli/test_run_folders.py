"""Where runs go (``runs/``, ``--trainer.default_root_dir``, no logger) and what ``last``/``best``/a path resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jsonargparse import Namespace

from zoo.lightning_cli import ZooLightningCLI
from zoo.run_folders import run_name


@pytest.fixture
def recipe(repo: Path, quick_fit: list[str]) -> list[str]:
    """Two epochs of two steps: validation twice, so there is a best checkpoint and a later last one."""
    return [
        "--config", str(repo / "recipes/quickstart.yaml"), *quick_fit, "--test_after_fit", "false",
        "--trainer.limit_train_batches", "2", "--trainer.max_epochs", "2",
    ]  # fmt: skip


def _saved(run: Path) -> list[str]:
    return sorted(p.name for p in run.iterdir() if not p.name.startswith("events"))


def test_default_root_dir_takes_the_place_of_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recipe) -> None:
    monkeypatch.chdir(tmp_path)
    ZooLightningCLI(args=["fit", *recipe, "--trainer.default_root_dir", "experiments"])
    run = tmp_path / "experiments" / "quickstart" / "version_0"
    assert _saved(run) == ["checkpoints", "config.yaml", "data.json", "env.json", "hparams.yaml"]
    assert list(run.glob("events.out.*"))
    assert not (tmp_path / "runs").exists()
    tested = ZooLightningCLI(args=["test", *recipe, "--trainer.default_root_dir", "experiments", "--ckpt_path", "last"])
    assert tested.config.test.ckpt_path == str(Path("experiments/quickstart/version_0/checkpoints/last.ckpt"))
    assert "test/acc1" in tested.trainer.callback_metrics


def test_without_a_logger_each_run_still_gets_its_folder_and_last_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recipe: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    quiet = [*recipe, "--trainer.logger", "false"]
    ZooLightningCLI(args=["fit", *quiet])
    ZooLightningCLI(args=["fit", *quiet])  # a second run used to fail on the config.yaml the first left in cwd
    runs = tmp_path / "runs" / "quickstart"
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", "version_1"]
    assert all(_saved(run) == ["checkpoints", "config.yaml", "data.json", "env.json"] for run in runs.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written into the working directory
    resumed = ZooLightningCLI(args=["fit", *quiet, "--trainer.max_epochs", "3", "--ckpt_path", "last"])
    assert resumed.trainer.global_step == 6
    saved = ["checkpoints", "config.resume-1.yaml", "config.yaml", "data.json", "data.resume-1.json", "env.json"]
    saved.append("env.resume-1.json")
    assert _saved(runs / "version_1") == saved
    assert yaml.safe_load((runs / "version_1/config.yaml").read_text())["trainer"]["default_root_dir"] is None


def test_best_in_a_new_process_and_a_path_resumes_into_the_folder_that_wrote_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], recipe: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    fitted = ZooLightningCLI(args=["fit", *recipe])
    best = Path(fitted.trainer.checkpoint_callback.best_model_path)
    tested = ZooLightningCLI(args=["test", *recipe, "--ckpt_path", "best"])
    assert "test/acc1" in tested.trainer.callback_metrics
    assert f"--ckpt_path best: using {best}" in capsys.readouterr().out
    run = tmp_path / "runs" / "quickstart" / "version_0"
    resumed = ZooLightningCLI(args=["fit", *recipe, "--trainer.max_epochs", "3", "--ckpt_path", str(best)])
    assert resumed.trainer.global_step == 6  # three epochs of two steps, whichever epoch the best was
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0", "version_1"]  # version_1: the test
    assert (run / "config.resume-1.yaml").is_file()
    resumed_config = yaml.safe_load((run / "config.resume-1.yaml").read_text())
    assert resumed_config["ckpt_path"] == str(best)


def test_best_with_no_runs_is_an_error_that_names_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], recipe: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        ZooLightningCLI(args=["test", *recipe, "--ckpt_path", "best"])
    assert stopped.value.code == 2
    assert "--ckpt_path best: no checkpoints under runs/quickstart/version_*/checkpoints" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("written", "used", "expected"),
    [
        ({"name": "Cora"}, "Cora", "cora/gcn"),
        ({"name": "Cora"}, "PubMed", "pubmed/gcn"),
        ({}, "Cora", "cora/gcn"),  # the recipe leaves the default
        ({}, "CiteSeer", "citeseer/gcn"),
    ],
)
def test_a_recipe_run_on_other_data_is_named_after_that_data(
    tmp_path: Path, written: dict[str, str], used: str, expected: str
) -> None:
    recipe = tmp_path / "recipes" / "cora" / "gcn.yaml"
    recipe.parent.mkdir(parents=True)
    data = {"class_path": "zoo.data.PlanetoidDataModule", **({"init_args": written} if written else {})}
    recipe.write_text(yaml.safe_dump({"data": data}))
    config = Namespace(
        config=[recipe], data=Namespace(class_path="zoo.data.PlanetoidDataModule", init_args=Namespace(name=used))
    )
    assert run_name(config) == expected
