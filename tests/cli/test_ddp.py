from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient


@pytest.mark.slow
def test_two_process_ddp_on_cpu_writes_one_checkpoint_and_one_tracked_run(repo: Path, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "zoo", "fit", "--config", str(repo / "recipes/quickstart.yaml"),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_steps", "4", "--trainer.limit_val_batches", "2", "--trainer.limit_test_batches", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0",
        "--trainer.limit_train_batches", "4", "--tracking", "mlflow",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    run_dirs = list((tmp_path / "runs" / "quickstart").iterdir())
    assert len(run_dirs) == 1, run_dirs  # both ranks log to one run
    checkpoints = sorted(p.name for p in (run_dirs[0] / "checkpoints").iterdir())
    assert checkpoints == ["epoch000-step000004.ckpt", "last.ckpt"]
    assert (run_dirs[0] / "config.yaml").is_file() and (run_dirs[0] / "env.json").is_file()
    record = json.loads((run_dirs[0] / "tracking.json").read_text())
    client = MlflowClient(record["uri"])
    runs = client.search_runs([record["experiment_id"]])
    assert [run.info.run_id for run in runs] == [record["run_id"]]  # rank zero logs, once
    assert runs[0].info.status == "FINISHED" and "test/acc1" in runs[0].data.metrics
