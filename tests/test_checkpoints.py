"""The checkpoint home: damaged files are named before a weight can change a result; files respect the umask."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from zoo.callbacks import AtomicCheckpointIO
from zoo.checkpoints import check_file, load_checkpoint
from zoo.lightning_cli import ZooLightningCLI
from zoo.tasks import ImageClassifier

FIXTURE = Path(__file__).parent / "fixtures" / "legacy" / "image_classifier.ckpt"


def test_a_flipped_bit_in_a_weight_is_named_instead_of_changing_results(tmp_path: Path, flip_a_weight_bit) -> None:
    member, key = flip_a_weight_bit(FIXTURE, tmp_path / "flipped.ckpt")
    assert torch.load(tmp_path / "flipped.ckpt", weights_only=True)  # torch itself loads it without a word
    with pytest.raises(ValueError, match=rf"is damaged: the bytes of its member '{member}' \(it holds ") as err:
        load_checkpoint(tmp_path / "flipped.ckpt")
    assert f"state_dict.{key}" in str(err.value) and "CRC-32" in str(err.value)
    assert check_file(FIXTURE) == FIXTURE  # the intact file passes


def test_the_cli_refuses_a_damaged_checkpoint_with_exit_2(
    tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str], flip_a_weight_bit
) -> None:
    flip_a_weight_bit(FIXTURE, tmp_path / "flipped.ckpt")
    with pytest.raises(SystemExit) as stopped:
        ZooLightningCLI(args=["test", "--config", str(repo / "recipes/quickstart.yaml"), "--ckpt_path",
                              str(tmp_path / "flipped.ckpt")])  # fmt: skip
    assert stopped.value.code == 2 and "flipped.ckpt is damaged" in capsys.readouterr().err


def test_ckpt_path_last_outside_fit_with_nothing_to_load_is_an_error(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        ZooLightningCLI(args=["test", "--config", str(repo / "recipes/quickstart.yaml"), "--ckpt_path", "last"])
    message = capsys.readouterr().err
    assert stopped.value.code == 2 and "no last checkpoint under runs/quickstart" in message
    assert "nothing to test" in message and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_checkpoints_get_the_mode_the_umask_gives_new_files(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        AtomicCheckpointIO().save_checkpoint({"state_dict": ImageClassifier("speedrun_net_tiny").state_dict()},
                                             tmp_path / "last.ckpt")  # fmt: skip
    finally:
        os.umask(previous)
    assert (tmp_path / "last.ckpt").stat().st_mode & 0o777 == mode
