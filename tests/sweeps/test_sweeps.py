"""``zoo tune`` with Optuna on a real recipe: the study, continuing it, best.yaml, pruning, failures, bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.storages import RetryHeartbeatStaleTrialCallback

from zoo.cli import main
from zoo.errors import ConfigError
from zoo.lightning_cli import ZooLightningCLI
from zoo.sweeps import read_sweep
from zoo.sweeps.study import _checkpoint_metrics, check_space, inference_latency_ms, run_sweep
from zoo.tasks.signature import InferenceSignature

FEW_STEPS = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
             "--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0"]  # fmt: skip


def _sweep(folder: Path, repo: Path, space: dict, **top: object) -> Path:
    path = folder / "q.sweep.yaml"
    path.write_text(yaml.safe_dump({"recipe": str(repo / "recipes/quickstart.yaml"), **top, "space": space}))
    return path


SPACE = {
    "model.init_args.optimizer.init_args.lr": {"loguniform": [0.01, 0.5]},
    "model.init_args.label_smoothing": {"choice": [0.0, 0.1]},
    "trainer.log_every_n_steps": 1,
}


def test_a_sweep_writes_its_study_and_best_config_and_a_second_run_continues_it(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = _sweep(tmp_path, repo, SPACE)
    main(["tune", "--sweep", str(sweep), "--trials", "4", "--pruner", "none", "--", *FEW_STEPS])
    folder = tmp_path / "runs" / "sweeps" / "q"
    study = optuna.load_study(study_name="q", storage=f"sqlite:///{folder / 'study.db'}")
    assert len(study.trials) == 4 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert study.direction.name == "MAXIMIZE" and study.user_attrs["metric"] == "val/acc1"
    out = capsys.readouterr().out
    assert "sweep q:" in out and "4 complete" in out and f"best config: {Path('runs/sweeps/q/best.yaml')}" in out

    best = study.best_trial
    run = Path(best.user_attrs["run_folder"])
    assert run == Path("runs/sweeps/q/trials/quickstart") / f"trial_{best.number:04d}"
    assert (run / "env.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    config = yaml.safe_load((folder / "best.yaml").read_text())
    assert (
        config["model"]["init_args"]["optimizer"]["init_args"]["lr"]
        == best.params["model.init_args.optimizer.init_args.lr"]
    )
    assert config["trainer"]["max_epochs"] == 2 and config["trainer"]["default_root_dir"] is None
    assert config["trainer"]["logger"]["init_args"]["save_dir"] == "runs"  # not into the sweep's trials
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["best"]["number"] == best.number and len(summary["trials"]) == 4
    assert (folder / "history.png").read_bytes()[:4] == b"\x89PNG"

    refit = ZooLightningCLI(args=["fit", "--config", str(folder / "best.yaml"), "--test_after_fit", "false"])
    assert Path(refit.trainer.log_dir).parent == Path("runs/quickstart")  # beside the recipe's own runs
    kept = _checkpoint_metrics(refit.trainer.checkpoint_callback.best_model_path)
    assert kept["val/acc1"] == pytest.approx(best.value, abs=1e-6)  # best.yaml reproduces the best trial

    main(["tune", "--sweep", str(sweep), "--trials", "4", "--pruner", "none", "--", *FEW_STEPS])
    assert len(optuna.load_study(study_name="q", storage=f"sqlite:///{folder / 'study.db'}").trials) == 8


def test_a_failing_trial_is_recorded_with_its_reason_and_the_sweep_goes_on(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    space = {"model.init_args.backbone": {"choice": ["speedrun_net_tiny", "no_such_net"]}}
    result = run_sweep(read_sweep(_sweep(tmp_path, repo, space)), 4, "f", FEW_STEPS, pruner="none", seed=1)
    summary = json.loads((result.folder / "summary.json").read_text())
    failed = [t for t in summary["trials"] if t["state"] == "fail"]
    assert failed and all("no_such_net" in t["error"] for t in failed)
    assert result.counts["complete"] + result.counts["fail"] == 4


def test_an_absurd_learning_rate_is_pruned_or_fails_and_the_sweep_finishes(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    space = {"model.init_args.optimizer.init_args.lr": {"choice": [0.1, 1.0e6]}, "trainer.max_epochs": 4}
    spec = read_sweep(_sweep(tmp_path, repo, space))
    study_trials = run_sweep(spec, 6, "p", FEW_STEPS[2:], pruner="median", seed=0)
    summary = json.loads((study_trials.folder / "summary.json").read_text())
    absurd = [t for t in summary["trials"] if t["params"].get("model.init_args.optimizer.init_args.lr") == 1.0e6]
    assert absurd and all(t["state"] in ("pruned", "fail") or t["value"] <= 0.2 for t in absurd)
    assert any(t["state"] in ("pruned", "fail") for t in absurd)


def test_bad_sweeps_are_named_before_any_trial(repo: Path, tmp_path: Path) -> None:
    def problem(space: object, **top: object) -> str:
        with pytest.raises(ConfigError) as raised:
            spec = read_sweep(_sweep(tmp_path, repo, space, **top))
            check_space(spec, FEW_STEPS)
        return str(raised.value)

    assert "has no key model.init_args.optimizer.init_args.lrr; closest: model.init_args.optimizer.init_args.lr" in (
        problem({"model.init_args.optimizer.init_args.lrr": {"uniform": [0.1, 0.2]}})
    )
    assert "the space is empty" in problem({})
    assert "bounds must satisfy low < high, got [0.5, 0.1]" in problem({"trainer.max_epochs": {"uniform": [0.5, 0.1]}})
    assert "a log scale needs low > 0" in problem({"model.init_args.label_smoothing": {"loguniform": [0, 0.1]}})
    assert "does not build" in problem({"model.init_args.backbone_kwargs.no_such_argument": {"choice": [1, 2]}})
    assert "say whether val/acc5 is to be maximized or minimized" in problem(
        {"model.init_args.label_smoothing": {"uniform": [0.0, 0.1]}}, metric="val/acc5"
    )


@pytest.mark.slow
def test_a_killed_sweep_resumes_and_retries_the_interrupted_trial(repo: Path, tmp_path: Path) -> None:
    """SIGKILL mid-trial, as a lost node would; the next invocation retries that trial's parameters."""
    sweep = _sweep(tmp_path, repo, SPACE)
    longer = [*FEW_STEPS, "--trainer.max_epochs", "15"]
    command = [sys.executable, "-m", "zoo", "tune", "--sweep", str(sweep), "--trials", "1", "--pruner", "none",
               "--", *longer]  # fmt: skip
    storage = f"sqlite:///{tmp_path / 'runs' / 'sweeps' / 'q' / 'study.db'}"
    sweeping = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # at most 120 s for the first trial to start training
            trials = _trials(storage)
            running = [t for t in trials if t.state.name == "RUNNING" and t.user_attrs.get("run_folder")]
            if running and (tmp_path / running[0].user_attrs["run_folder"] / "config.yaml").is_file():
                break
            assert sweeping.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("no trial started training within 120 s")
    finally:
        sweeping.kill()
        sweeping.wait()
    killed = running[0]
    time.sleep(7)  # the heartbeat (every 2 s) goes stale after 6 s
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    trials = {t.number: t for t in _trials(storage)}
    assert trials[killed.number].state.name == "FAIL"
    retried = [t for t in trials.values() if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed.number]
    assert retried and retried[0].params == killed.params and retried[0].state.name == "COMPLETE"


def _trials(storage: str) -> list:
    if not Path(storage.removeprefix("sqlite:///")).is_file():
        return []
    from sqlalchemy.exc import OperationalError

    try:
        return optuna.load_study(study_name="q", storage=storage).get_trials()
    except (KeyError, ValueError, RuntimeError, OperationalError):  # the study (or its tables) is not there yet
        return []


@pytest.mark.slow
def test_parallel_trials_share_the_study(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two worker processes, one core each, four trials in all."""
    monkeypatch.chdir(tmp_path)
    sweep = _sweep(tmp_path, repo, SPACE)
    main(["tune", "--sweep", str(sweep), "--trials", "4", "--parallel", "2", "--pruner", "none", "--", *FEW_STEPS])
    trials = optuna.load_study(study_name="q", storage=f"sqlite:///{tmp_path / 'runs/sweeps/q/study.db'}").trials
    assert 4 <= len(trials) <= 5 and all(t.state.name == "COMPLETE" for t in trials)  # a race may start a fifth
    assert len({t.params["model.init_args.optimizer.init_args.lr"] for t in trials}) == len(trials)
    assert (tmp_path / "runs/sweeps/q/best.yaml").is_file()
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(later[0] < earlier[1] for earlier, later in pairwise(spans))  # at the same time


def test_a_tracked_sweep_nests_its_trials_under_one_mlflow_run(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from mlflow import MlflowClient

    spec = read_sweep(_sweep(tmp_path, repo, SPACE))
    result = run_sweep(spec, 2, "t", [*FEW_STEPS, "--tracking", "mlflow"], pruner="none")
    client = MlflowClient(f"sqlite:///{(result.folder / 'trials' / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.info.run_name == "sweep t"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 2 and parents[0].info.status == "FINISHED"
    assert parents[0].data.metrics["best/val/acc1"] == pytest.approx(result.best_value)
    assert {f.path for f in client.list_artifacts(parents[0].info.run_id)} >= {
        "best.yaml",
        "summary.json",
        "sweep.json",
    }


def test_a_multi_objective_sweep_finds_a_pareto_front(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Accuracy against parameter count and latency (NSGA-II): two backbones of different sizes."""
    monkeypatch.chdir(tmp_path)
    space = {"model.init_args.backbone": {"choice": ["speedrun_net_tiny", "speedrun_net"]},
             "model.init_args.optimizer.init_args.lr": {"loguniform": [0.01, 0.5]}}  # fmt: skip
    sweep = _sweep(tmp_path, repo, space, metric=["val/acc1", "params", "latency_ms"])
    main(["tune", "--sweep", str(sweep), "--trials", "4", "--", *FEW_STEPS])
    folder = tmp_path / "runs" / "sweeps" / "q"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["direction"] == ["maximize", "minimize", "minimize"]
    assert summary["metric"] == ["val/acc1", "params", "latency_ms"]
    front = summary["pareto"]
    assert front and all(len(t["values"]) == 3 for t in front)
    complete = [t for t in summary["trials"] if t["state"] == "complete"]
    for trial in front:  # nobody on the front is beaten on every objective by another complete trial
        assert not any(
            other["values"][0] >= trial["values"][0]
            and all(o <= v for o, v in zip(other["values"][1:], trial["values"][1:], strict=True))
            and other["values"] != trial["values"]
            for other in complete
        )
    assert all(t["values"][2] > 0 and math.isfinite(t["values"][2]) for t in complete)  # milliseconds
    assert (folder / "pareto.png").read_bytes()[:4] == b"\x89PNG" and not (folder / "best.yaml").exists()
    assert "Pareto front of val/acc1, params, latency_ms (maximize/minimize/minimize)" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="after the first metric come objectives to minimise: params, latency_ms"):
        read_sweep(_sweep(tmp_path, repo, space, metric=["val/acc1", "latency"]))


class _Sleeper(torch.nn.Module):
    """A task-shaped module whose inference network takes at least 5 ms per call."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls: list[tuple[int, ...]] = []

    def inference_signature(self) -> InferenceSignature:
        return InferenceSignature("image_classification", (), (), example_sizes={"batch": 4, "height": 8})

    def example_inputs(self, sizes: dict[str, int], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        return (torch.rand(sizes["batch"], sizes["height"], generator=generator),)

    def inference_module(self) -> torch.nn.Module:
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        time.sleep(0.005)
        return x


def test_the_latency_objective_times_batch_one_forward_passes_in_eval_mode() -> None:
    module = _Sleeper().train()
    latency = inference_latency_ms(module)
    assert 5.0 <= latency < 100.0 and module.training  # back in training mode afterwards
    assert module.calls == [(1, 8)] * 25  # 5 warm-up and 20 timed passes at batch size 1
