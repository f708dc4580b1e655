"""``zoo fit --tracking mlflow`` against a real MLflow store (SQLite, in a temporary folder), read back with
``mlflow.MlflowClient``; the checks that fail before anything is written; Lightning's logger given directly."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient
from mlflow.artifacts import load_dict, load_text

from zoo.lightning_cli import ZooLightningCLI


@pytest.fixture
def recipe(repo: Path, quick_fit: list[str]) -> list[str]:
    """Two epochs of two steps, validated twice."""
    return [
        "--config", str(repo / "recipes/quickstart.yaml"), *quick_fit, "--test_after_fit", "false",
        "--trainer.limit_train_batches", "2", "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "1",
    ]  # fmt: skip


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def _run(folder: Path) -> tuple[MlflowClient, str]:
    record = json.loads((folder / "tracking.json").read_text())
    return MlflowClient(record["uri"]), record["run_id"]


def test_a_tracked_fit_logs_its_record_and_a_resume_continues_the_same_run(workdir: Path, recipe: list[str]) -> None:
    fitted = ZooLightningCLI(args=["fit", *recipe, "--tracking", "mlflow", "--tracking_checkpoints", "true"])
    folder = workdir / "runs" / "quickstart" / "version_0"
    client, run_id = _run(folder)
    assert client._tracking_client.tracking_uri == f"sqlite:///{workdir.resolve()}/runs/mlflow.db"
    run = client.get_run(run_id)
    assert run.info.run_name == "quickstart/version_0" and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "quickstart"

    params = run.data.params
    assert params["model.init_args.optimizer.init_args.lr"] == str(
        fitted.config.fit.model.init_args.optimizer.init_args.lr
    )
    assert params["data.class_path"] == fitted.config.fit.data.class_path
    assert params["trainer.max_epochs"] == "2" and params["seed_everything"] == str(fitted.config.fit.seed_everything)
    assert int(params["model.parameters"]) == sum(p.numel() for p in fitted.model.parameters())
    assert int(params["model.trainable_parameters"]) == int(params["model.parameters"])
    assert int(params["model.train_flops_per_sample"]) > 0
    assert "tracking_uri" not in params  # a server URI may carry credentials

    assert {"train/loss", "val/loss", "val/acc1", "lr-SGD/pg1"} <= set(run.data.metrics)
    assert [m.step for m in client.get_metric_history(run_id, "val/acc1")] == [1, 3]  # last training step

    artifacts = run.info.artifact_uri
    assert artifacts.startswith(str(workdir.resolve() / "runs" / "mlartifacts"))  # beside the store, not ./mlruns
    assert not (workdir / "mlruns").exists()
    assert load_dict(f"{artifacts}/env.json") == json.loads((folder / "env.json").read_text())
    data = json.loads((folder / "data.json").read_text())
    assert load_dict(f"{artifacts}/data.json") == data and params["data.content_sha256"] == data["content_sha256"]
    assert params["data.size.train"] == str(data["splits"]["train"])
    assert yaml.safe_load(load_text(f"{artifacts}/config.yaml")) == yaml.safe_load((folder / "config.yaml").read_text())
    assert load_text(f"{artifacts}/recipe/quickstart.yaml") == (Path(recipe[1])).read_text()
    assert "ImageClassifier(" in load_text(f"{artifacts}/model/architecture.txt")
    best = Path(fitted.trainer.checkpoint_callback.best_model_path).resolve()
    assert run.data.tags["zoo.best_checkpoint"] == str(best)
    assert run.data.tags["zoo.run_folder"] == str(folder.resolve())
    assert run.data.tags["mlflow.source.git.commit"] == json.loads((folder / "env.json").read_text())["git"]["commit"]
    uploaded = [f.path for f in client.list_artifacts(run_id, "checkpoints")]
    assert uploaded == [f"checkpoints/{best.name}"]  # once, the best only

    with pytest.warns(UserWarning, match=r"keeps its first values of .*trainer\.max_epochs"):
        ZooLightningCLI(args=["fit", *recipe, "--tracking", "mlflow", "--trainer.max_epochs", "3", "--ckpt_path=last"])
    assert _run(folder)[1] == run_id  # the same MLflow run
    resumed = client.get_run(run_id)
    assert [m.step for m in client.get_metric_history(run_id, "val/acc1")] == [1, 3, 5]
    assert resumed.data.params["trainer.max_epochs"] == "2"  # MLflow parameters never change ...
    assert "max_epochs: 3" in load_text(f"{artifacts}/config.resume-1.yaml")  # ... the resume's config says it
    assert load_dict(f"{artifacts}/env.resume-1.json")["command"]
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert "ckpt_path" not in resumed.data.params


def test_an_unreachable_server_fails_before_anything_is_written(
    workdir: Path, recipe: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(SystemExit) as stopped:
        ZooLightningCLI(args=["fit", *recipe, "--tracking", "mlflow", "--tracking_uri", uri])
    assert stopped.value.code == 2
    assert f"tracking server {uri} is unreachable" in capsys.readouterr().err
    assert list(workdir.iterdir()) == []


def test_bad_tracking_settings_are_named(
    workdir: Path, recipe: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit):
        ZooLightningCLI(args=["fit", *recipe, "--tracking", "wandb"])
    assert "--tracking 'wandb': choose one of none, mlflow" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    with pytest.raises(SystemExit):
        ZooLightningCLI(args=["fit", *recipe, "--tracking", "mlflow"])
    assert "pip install 'lightning-zoo[tracking]'" in capsys.readouterr().err
    assert list(workdir.iterdir()) == []


def test_lightnings_mlflow_logger_as_the_trainer_logger_tracks_beside_tensorboard(
    workdir: Path, recipe: list[str]
) -> None:
    uri = f"sqlite:///{workdir / 'elsewhere.db'}"
    logger = ["--trainer.logger", "MLFlowLogger", "--trainer.logger.init_args.tracking_uri", uri,
              "--trainer.logger.init_args.experiment_name", "mine"]  # fmt: skip
    fitted = ZooLightningCLI(args=["fit", *recipe, *logger, "--trainer.max_epochs", "1"])
    folder = workdir / "runs" / "quickstart" / "version_0"
    assert list(folder.glob("events.out.*"))  # TensorBoard first: the run folder and its config as always
    client, run_id = _run(folder)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "mine" and "val/acc1" in run.data.metrics
    assert fitted.config.fit.tracking == "mlflow"


def test_without_a_logger_mlflow_gets_the_run_folder(workdir: Path, recipe: list[str]) -> None:
    quiet = ["--trainer.logger", "false", "--tracking", "mlflow", "--trainer.max_epochs", "1"]
    ZooLightningCLI(args=["fit", *recipe, *quiet])
    folder = workdir / "runs" / "quickstart" / "version_0"
    assert {"config.yaml", "env.json", "tracking.json", "checkpoints"} <= {p.name for p in folder.iterdir()}
    assert list((folder / "checkpoints").glob("last.ckpt"))
    client, run_id = _run(folder)
    assert "val/acc1" in client.get_run(run_id).data.metrics
    assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["zoo_metadata"]["environment"]["git"]


def test_system_metrics_are_logged_when_asked(
    workdir: Path, recipe: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")  # MLflow's own knob (default 10 s)
    ZooLightningCLI(args=["fit", *recipe, "--tracking", "mlflow", "--tracking_system_metrics", "true",
                          "--trainer.max_epochs", "6"])  # fmt: skip
    client, run_id = _run(workdir / "runs" / "quickstart" / "version_0")
    assert "system/cpu_utilization_percentage" in client.get_run(run_id).data.metrics


def test_other_lightning_loggers_keep_working(workdir: Path, recipe: list[str]) -> None:
    csv = ["--trainer.logger", "CSVLogger", "--trainer.logger.init_args.save_dir", "logs"]
    ZooLightningCLI(args=["fit", *recipe, *csv, "--trainer.max_epochs", "1"])
    run = workdir / "logs" / "quickstart" / "version_0"
    assert "val/acc1" in (run / "metrics.csv").read_text().splitlines()[0]
    assert (run / "env.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_a_real_tracking_server_takes_the_run_and_its_files(workdir: Path, recipe: list[str]) -> None:
    """``mlflow server`` on 127.0.0.1, started as a team would; about 10 s to start on two cores."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = workdir / "server"
    store.mkdir()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{store / 'db.sqlite'}", "--artifacts-destination", str(store / "art"),
               "--workers", "1"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=store)
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # at most 60 s
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.25)
        else:
            pytest.fail(f"mlflow server did not answer on {uri} within 60 s")
        ZooLightningCLI(
            args=["fit", *recipe, "--tracking", "mlflow", "--tracking_uri", uri, "--trainer.max_epochs", "1"]
        )
        record = json.loads((workdir / "runs" / "quickstart" / "version_0" / "tracking.json").read_text())
        assert record["uri"] == uri and not (workdir / "runs" / "mlflow.db").exists()
        client = MlflowClient(uri)
        run = client.get_run(record["run_id"])
        assert "val/acc1" in run.data.metrics and run.info.status == "FINISHED"
        assert {f.path for f in client.list_artifacts(record["run_id"])} >= {"config.yaml", "env.json", "data.json"}
        assert list((store / "art").rglob("env.json"))  # the server stored the files
    finally:
        server.terminate()
        server.wait(timeout=30)
