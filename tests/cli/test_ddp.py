from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_two_process_ddp_on_cpu_trains_and_writes_one_checkpoint(repo: Path, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "zoo", "fit", "--config", str(repo / "recipes/quickstart.yaml"),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_steps", "4", "--trainer.limit_val_batches", "2", "--trainer.limit_test_batches", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--data.init_args.batch_size", "16", "--data.init_args.num_workers", "0",
        "--trainer.limit_train_batches", "4",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    run_dirs = list((tmp_path / "runs" / "quickstart").iterdir())
    assert len(run_dirs) == 1, run_dirs  # both ranks log to one run
    checkpoints = sorted(p.name for p in (run_dirs[0] / "checkpoints").iterdir())
    assert checkpoints == ["epoch000-step000004.ckpt", "last.ckpt"]
    assert (run_dirs[0] / "config.yaml").is_file()
