"""``zoo tune --backend ray`` on a real local Ray instance: ASHA over the sweep's study, PBT, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from zoo.cli import main
from zoo.errors import ConfigError, MissingExtraError, UsageError
from zoo.sweeps import read_sweep
from zoo.sweeps.on_ray import RayOptions, run_ray_sweep
from zoo.sweeps.ray_trial import NewOptimizerSettings

pytest.importorskip("ray.tune")

FEW_STEPS = ["--trainer.max_epochs", "3", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
             "--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0"]  # fmt: skip
SPACE = {
    "model.init_args.optimizer.init_args.lr": {"loguniform": [0.01, 0.5]},
    "model.init_args.label_smoothing": {"choice": [0.0, 0.1]},
}


def _sweep(folder: Path, repo: Path, space: dict, **top: object) -> Path:
    path = folder / "q.sweep.yaml"
    path.write_text(yaml.safe_dump({"recipe": str(repo / "recipes/quickstart.yaml"), **top, "space": space}))
    return path


@pytest.mark.slow
def test_a_ray_sweep_with_asha_continues_the_study_and_writes_trial_folders_and_best_yaml(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = _sweep(tmp_path, repo, SPACE)
    main(["tune", "--sweep", str(sweep), "--trials", "1", "--pruner", "none", "--", *FEW_STEPS])  # Optuna first
    main(["tune", "--sweep", str(sweep), "--trials", "4", "--backend", "ray", "--num_cpus", "2", "--", *FEW_STEPS])
    folder = tmp_path / "runs" / "sweeps" / "q"
    study = optuna.load_study(study_name="q", storage=f"sqlite:///{folder / 'study.db'}")
    assert len(study.trials) == 5  # the same study, continued by the other backend
    on_ray = [t for t in study.trials if t.user_attrs.get("backend") == "ray"]
    assert [t.number for t in on_ray] == [1, 2, 3, 4] and all(t.user_attrs["ray_trial_id"] for t in on_ray)
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in on_ray)
    finished = [t for t in on_ray if t.state.name == "COMPLETE"]
    assert finished and all(sorted(t.intermediate_values) == [0, 1, 2] for t in finished)  # keyed by epoch
    for trial in on_ray:
        run = Path(trial.user_attrs["run_folder"])
        assert run == folder / "trials" / "quickstart" / f"trial_{trial.number:04d}"
        assert (run / "env.json").is_file() and (run / "config.yaml").is_file()
    best = study.best_trial
    config = yaml.safe_load((folder / "best.yaml").read_text())
    assert config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == pytest.approx(
        best.params["model.init_args.optimizer.init_args.lr"]
    )
    assert list((folder / "ray").iterdir())  # Ray's own experiment folder
    out = capsys.readouterr().out
    assert "sweep q:" in out and json.loads(out.strip().splitlines()[-1])["counts"]

    with pytest.raises(UsageError, match="one trial asks for 3 CPU and 0 GPU, but the Ray cluster has 2 CPU"):
        run_ray_sweep(read_sweep(sweep), 1, "q", FEW_STEPS, "runs/sweeps", 0, RayOptions(cpus_per_trial=3, num_cpus=2))


@pytest.mark.slow
def test_population_based_training_continues_a_trial_from_the_other_ones_checkpoint(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    space = {"model.init_args.optimizer.init_args.lr": {"loguniform": [1.0e-6, 1.0]}}
    spec = read_sweep(_sweep(tmp_path, repo, space, metric="val/loss"))  # the first val batches are one class
    few = [*FEW_STEPS[2:], "--trainer.max_epochs", "4", "--trainer.limit_train_batches", "4"]
    options = RayOptions(scheduler="pbt", num_cpus=2, perturbation_interval=1)
    result = run_ray_sweep(spec, 2, "pbt", few, "runs/sweeps", 3, options)
    summary = json.loads((result.folder / "summary.json").read_text())
    assert [t["state"] for t in summary["trials"]] == ["complete", "complete"]
    folders = sorted(p.name for p in (result.folder / "trials" / "quickstart").iterdir())
    continued = [name for name in folders if "-" in name]
    assert continued, f"no trial continued from another's checkpoint: {folders}"
    resumed_config = yaml.safe_load(
        (result.folder / "trials" / "quickstart" / continued[0] / "config.yaml").read_text()
    )
    assert resumed_config["trainer"]["max_epochs"] == 4
    study = optuna.load_study(study_name="pbt", storage=f"sqlite:///{result.folder / 'study.db'}")
    assert all(t.user_attrs["scheduler"] == "pbt" and t.user_attrs["run_folders"] for t in study.trials)
    assert any(len(t["run_folders"]) > 1 for t in summary["trials"])  # the continued trial lists its folders


def test_new_optimizer_settings_scale_the_restored_state_group_by_group() -> None:
    checkpoint = {
        "optimizer_states": [{"param_groups": [
            {"lr": 0.02, "initial_lr": 0.2, "weight_decay": 5e-4, "nesterov": True},
            {"lr": 0.02, "initial_lr": 0.2, "weight_decay": 0.0, "nesterov": True},
        ]}],
        "lr_schedulers": [{"base_lrs": [0.2, 0.2], "_last_lr": [0.02, 0.02]}],
    }  # fmt: skip
    key = "model.init_args.optimizer.init_args."
    donor = {f"{key}lr": 0.2, f"{key}weight_decay": 5e-4, f"{key}nesterov": True, "trainer.max_epochs": 4}
    new = {f"{key}lr": 0.1, f"{key}weight_decay": 1e-3, f"{key}nesterov": False, "trainer.max_epochs": 4}
    NewOptimizerSettings(donor, new).on_load_checkpoint(None, None, checkpoint)  # type: ignore[arg-type]
    first, second = checkpoint["optimizer_states"][0]["param_groups"]
    assert first["lr"] == pytest.approx(0.01) and first["initial_lr"] == pytest.approx(0.1)
    assert first["weight_decay"] == pytest.approx(1e-3) and second["weight_decay"] == 0.0  # no decay stays none
    assert first["nesterov"] is False and second["nesterov"] is False
    assert checkpoint["lr_schedulers"][0]["base_lrs"] == pytest.approx([0.1, 0.1])


def test_bad_ray_sweeps_are_refused_before_ray_starts(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conditional = {**SPACE, "model.init_args.optimizer.init_args.momentum": {
        "uniform": [0.8, 0.99], "when": {"model.init_args.label_smoothing": 0.1}}}  # fmt: skip
    spec = read_sweep(_sweep(tmp_path, repo, conditional))
    with pytest.raises(ConfigError, match="cannot search the conditional key"):
        run_ray_sweep(spec, 2, "c", FEW_STEPS, tmp_path, 0, RayOptions(scheduler="pbt"))
    with pytest.raises(ConfigError, match="PBT cannot pause and restore"):
        run_ray_sweep(read_sweep(_sweep(tmp_path, repo, SPACE)), 2, "c", FEW_STEPS, tmp_path, 0,
                      RayOptions(scheduler="pbt", workers_per_trial=2))  # fmt: skip
    with pytest.raises(ConfigError, match="--cpus_per_trial must be above 0"):
        run_ray_sweep(spec, 2, "c", FEW_STEPS, tmp_path, 0, RayOptions(cpus_per_trial=0))
    monkeypatch.setitem(sys.modules, "ray.tune", None)  # as if the ray extra were not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'lightning-zoo\[ray\]'"):
        run_ray_sweep(spec, 2, "c", FEW_STEPS, tmp_path, 0, RayOptions())


@pytest.mark.heavy  # a Ray Train run of two DDP workers takes about 30 s on 2 cores: kept out of CI's budget
def test_a_trial_trains_data_parallel_on_ray_train_workers(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = read_sweep(_sweep(tmp_path, repo, {"model.init_args.optimizer.init_args.lr": {"loguniform": [0.01, 0.5]}}))
    options = RayOptions(scheduler="fifo", num_cpus=2, cpus_per_trial=2, workers_per_trial=2)
    result = run_ray_sweep(spec, 1, "ddp", [*FEW_STEPS[2:], "--trainer.max_epochs", "2"], "runs/sweeps", 0, options)
    summary = json.loads((result.folder / "summary.json").read_text())
    assert [t["state"] for t in summary["trials"]] == ["complete"], summary["trials"]
    run = Path(summary["trials"][0]["run_folder"])
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["trainer"]["strategy"]["class_path"] == "ray.train.lightning.RayDDPStrategy"
    assert (run / "checkpoints" / "last.ckpt").is_file() and summary["trials"][0]["epochs_validated"] == 2
