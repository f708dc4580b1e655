from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from zoo.callbacks import AtomicCheckpointIO, ResumableCheckpoint, check_checkpoint_file
from zoo.lightning_cli import ZooLightningCLI


@pytest.fixture
def quick(quick_fit: list[str]) -> list[str]:
    return [*quick_fit, "--test_after_fit", "false"]


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "weights": torch.ones(3)}, path)
    with pytest.raises(Exception, match="pickle"):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(10_000), "bad": lambda: None}, path)
    assert io.load_checkpoint(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left behind


KILLED_WRITER = """
import sys, torch
from zoo.callbacks import AtomicCheckpointIO
io, path = AtomicCheckpointIO(), sys.argv[1]
io.save_checkpoint({"step": 1}, path)
print("first saved", flush=True)
io.save_checkpoint({"step": 2, "big": torch.zeros(400_000_000, dtype=torch.uint8)}, path)  # 400 MB
"""


def test_process_killed_mid_write_leaves_the_previous_checkpoint_loadable(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    assert writer.stdout.readline().strip() == "first saved"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the second write has started, then kill the writer
        partial = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") and p.stat().st_size > 1_000_000]
        if partial:
            break
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert partial, "the second write never started"
    assert torch.load(path, weights_only=True) == {"step": 1}


def test_missing_or_truncated_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"checkpoint {tmp_path / 'nope.ckpt'} does not exist"):
        check_checkpoint_file(tmp_path / "nope.ckpt")
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, whole)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(ValueError, match=f"checkpoint {truncated} is truncated"):
        check_checkpoint_file(truncated)
    assert check_checkpoint_file(whole) == whole


@pytest.mark.parametrize("kind", ["missing", "truncated"])
def test_cli_rejects_a_bad_ckpt_path_before_doing_anything(
    kind: str, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.ckpt"
    if kind == "truncated":
        path.write_bytes(b"PK\x03\x04 not a whole zip")
    with pytest.raises(SystemExit):
        ZooLightningCLI(args=["fit", "--config", str(repo / "recipes/quickstart.yaml"), "--ckpt_path", str(path)])
    err = capsys.readouterr().err
    assert f"checkpoint {path}" in err and ("does not exist" if kind == "missing" else "truncated") in err
    assert not (tmp_path / "runs").exists()


def test_ckpt_path_last_resumes_in_the_same_run_folder(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = ["--config", str(repo / "recipes/quickstart.yaml"), *quick, "--trainer.limit_train_batches", "4"]
    fresh = ZooLightningCLI(args=["fit", *recipe, "--trainer.max_epochs", "1", "--ckpt_path", "last"])
    assert fresh.trainer.global_step == 4  # nothing to resume yet: a new run
    resumed = ZooLightningCLI(args=["fit", *recipe, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
    assert resumed.trainer.global_step == 8
    run_dir = tmp_path / "runs" / "quickstart" / "version_0"
    assert sorted(p.name for p in (tmp_path / "runs" / "quickstart").iterdir()) == ["version_0"]
    assert (run_dir / "config.yaml").is_file() and (run_dir / "config.resume-1.yaml").is_file()
    resumed_config = yaml.safe_load((run_dir / "config.resume-1.yaml").read_text())
    assert resumed_config["ckpt_path"] == str(Path("runs/quickstart/version_0/checkpoints/last.ckpt"))
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8


def test_a_second_writer_is_refused_while_the_first_lives_and_a_dead_ones_lock_is_taken_over(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import socket

    monkeypatch.chdir(tmp_path)
    recipe = ["--config", str(repo / "recipes/quickstart.yaml"), *quick, "--trainer.limit_train_batches", "2"]
    ZooLightningCLI(args=["fit", *recipe, "--trainer.max_epochs", "1"])
    run_dir = tmp_path / "runs" / "quickstart" / "version_0"
    assert not (run_dir / "run.lock").exists()  # released when fit ended
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a live process on this host
    try:
        lock = {"pid": writer.pid, "host": socket.gethostname(), "started": time.time()}
        (run_dir / "run.lock").write_text(json.dumps(lock))
        with pytest.raises(SystemExit) as stopped:
            ZooLightningCLI(args=["fit", *recipe, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
        assert stopped.value.code == 2
        assert f"is being written by another zoo fit (pid {writer.pid}" in capsys.readouterr().err
    finally:
        writer.kill()
        writer.wait()
    resumed = ZooLightningCLI(args=["fit", *recipe, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
    assert resumed.trainer.global_step == 4 and not (run_dir / "run.lock").exists()


@pytest.mark.slow
def test_sigterm_saves_a_resumable_checkpoint_and_restart_finishes(
    repo: Path, tmp_path: Path, quick: list[str]
) -> None:
    command = [
        sys.executable, "-m", "zoo", "fit", "--config", str(repo / "recipes/quickstart.yaml"), *quick,
        "--data.init_args.num_workers", "2",  # the workers get the signal too, as under a scheduler
        "--trainer.max_steps", "400", "--checkpoint.every_n_train_steps", "10", "--ckpt_path", "last",
    ]  # fmt: skip
    job = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    last = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline:  # the periodic save at step 10
        time.sleep(0.05)
    time.sleep(1.0)  # let a few more steps run
    os.killpg(job.pid, signal.SIGTERM)  # the whole job, loader workers included
    output, _ = job.communicate(timeout=120)
    saved = torch.load(last, weights_only=True)
    assert "SIGTERMException: saved" in output, output[-2000:]
    assert 10 < saved["global_step"] < 400  # saved at the preemption, not only at the periodic save
    assert f"at step {saved['global_step']}" in output

    restart = [*command[:-4], "--trainer.max_steps", str(saved["global_step"] + 5), "--ckpt_path", "last"]
    finished = subprocess.run(restart, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert f"resuming from {Path('runs/quickstart/version_0/checkpoints/last.ckpt')}" in finished.stdout
    assert torch.load(last, weights_only=True)["global_step"] == saved["global_step"] + 5


def test_resumable_checkpoint_installs_the_atomic_writer(tmp_path: Path) -> None:
    import lightning as L

    trainer = L.Trainer(callbacks=[ResumableCheckpoint(dirpath=tmp_path)], logger=False, accelerator="cpu")
    trainer.checkpoint_callback.setup(trainer, L.LightningModule(), "fit")
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


SIGTERM_AT = '''
import os, signal, sys
import lightning as L

class SigtermAt(L.Callback):
    """Send this process SIGTERM once, at the second batch of validation inside fit, or of testing."""

    sent = False

    def _send(self, trainer, batch_idx):
        if not SigtermAt.sent and batch_idx == 1 and not trainer.sanity_checking:
            SigtermAt.sent = True
            os.kill(os.getpid(), signal.SIGTERM)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if os.environ["PHASE"] == "validation" and trainer.state.fn == "fit":
            self._send(trainer, batch_idx)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if os.environ["PHASE"] == "test":
            self._send(trainer, batch_idx)

from zoo.cli import main
main(sys.argv[1:])
'''


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["validation", "test"])
def test_sigterm_outside_the_training_step_stops_promptly_with_status_143(
    phase: str, repo: Path, tmp_path: Path, quick_fit: list[str]
) -> None:
    """Validation inside fit saves a resumable last.ckpt; testing stops at once; loader workers never hang exit."""
    (tmp_path / "run.py").write_text(SIGTERM_AT)
    command = [
        sys.executable, str(tmp_path / "run.py"), "fit", "--config", str(repo / "recipes/quickstart.yaml"),
        *quick_fit, "--data.init_args.num_workers", "2", "--trainer.limit_train_batches", "3",
        "--trainer.limit_val_batches", "6", "--trainer.limit_test_batches", "6", "--trainer.max_epochs", "2",
        "--trainer.callbacks+=__main__.SigtermAt",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=tmp_path, env={**os.environ, "PHASE": phase}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 143, done.stderr[-2000:]
    assert time.monotonic() - started < 60 and "stopped by SIGTERM" in done.stdout
    last = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)["global_step"]
    assert saved == (3 if phase == "validation" else 6)  # validation of epoch 0, or the test after epoch 1
    if phase == "validation":
        resumed = subprocess.run(
            [*command[:-1], "--ckpt_path", "last"], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert torch.load(last, weights_only=True)["global_step"] == 6


def test_last_is_the_newest_state_even_when_the_monitored_metric_stops_improving(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    ZooLightningCLI(args=["fit", "--config", str(repo / "recipes/quickstart.yaml"), *quick,
                          "--trainer.limit_train_batches", "2", "--trainer.max_epochs", "3",
                          "--checkpoint.monitor", "epoch", "--checkpoint.mode", "min"])  # fmt: skip
    checkpoints = tmp_path / "runs" / "quickstart" / "version_0" / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == 6  # not 2, the best epoch's
    assert [p.name for p in checkpoints.glob("epoch*")] == ["epoch000-step000002.ckpt"]


class _RecordingIO(AtomicCheckpointIO):
    """The atomic writer, noting the name and step of every checkpoint it writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[tuple[str, int]] = []

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        super().save_checkpoint(checkpoint, path, storage_options)
        self.written.append((Path(path).name, checkpoint["global_step"]))


@pytest.mark.parametrize(("seconds", "last_steps"), [(3600.0, [2, 10]), (0.0, [2, 4, 6, 8, 10])])
def test_last_is_written_at_most_every_last_every_seconds_and_always_at_the_end(
    tmp_path: Path, trainer_factory, seconds: float, last_steps: list[int]
) -> None:
    from lightning.pytorch.demos.boring_classes import BoringModel

    io = _RecordingIO()
    checkpoint = ResumableCheckpoint(dirpath=tmp_path, monitor="step", mode="max", last_every_seconds=seconds)
    trainer = trainer_factory(callbacks=[checkpoint], plugins=[io], enable_checkpointing=True, max_epochs=5,
                              limit_train_batches=2, limit_val_batches=1)  # fmt: skip
    trainer.fit(BoringModel())
    assert [step for name, step in io.written if name == "last.ckpt"] == last_steps
    assert [step for name, step in io.written if name != "last.ckpt"] == [2, 4, 6, 8, 10]  # every best, each time
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 10
