"""``zoo tune-batch-size`` and ``zoo lr-find`` on a real recipe; the CPU memory guard the batch-size search uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lightning.pytorch.utilities.memory import is_oom_error

from zoo.cli import main
from zoo.finders import _TrialClock, find_batch_size


@pytest.fixture
def tiny(repo: Path) -> list[str]:
    return ["--config", str(repo / "recipes/quickstart.yaml"), "--data.init_args.num_workers", "0"]


def test_the_batch_size_finder_stops_at_max_val_and_times_every_size(tiny: list[str]) -> None:
    found, table = find_batch_size(tiny, max_val=32, init_val=4, steps_per_trial=3)
    assert found == 32 and [row["batch_size"] for row in table] == [4, 8, 16, 32]  # each size really ran
    assert all(row["samples_per_second"] > 0 and row["peak_resident_mb"] > 0 for row in table)


def test_the_command_prints_the_table_and_the_override(tiny: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    main(["tune-batch-size", *tiny, "--max_val", "16", "--init_val", "8", "--steps_per_trial", "3"])
    out = capsys.readouterr().out
    assert re.search(r"^\s+8\s+[0-9.]+\s+[0-9]+$", out, re.M) and "largest batch that fits: 16" in out
    assert "use: --data.init_args.batch_size 16" in out


def test_the_cpu_guard_stops_a_trial_that_would_not_fit_as_lightning_expects() -> None:
    clock = _TrialClock(guard_memory=True, steps_per_trial=3)
    clock._budget, clock._growth = 100.0, {8: 60.0}
    clock._check_room(8)  # the size already measured: no prediction needed
    with pytest.raises(RuntimeError) as stopped:
        clock._check_room(16)  # 60 MB at 8 -> about 120 MB at 16, over the 100 MB budget
    assert is_oom_error(stopped.value) and "batch 16 would need about 120 MB" in str(stopped.value)


def test_lr_find_writes_its_plot_and_prints_the_override(
    tiny: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "lr.png"
    main(["lr-find", *tiny, "--data.init_args.batch_size", "16", "--num_training", "20", "--out", str(plot)])
    out = capsys.readouterr().out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    suggested = re.search(r"use: --model\.init_args\.optimizer\.init_args\.lr ([0-9.e+-]+)", out)
    assert suggested and 1e-6 <= float(suggested.group(1)) <= 1.0


def test_a_finder_without_a_recipe_is_told_to_give_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["lr-find"])
    assert stopped.value.code == 2 and "give the recipe: zoo lr-find --config" in capsys.readouterr().err
