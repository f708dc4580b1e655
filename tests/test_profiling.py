"""``zoo profile`` (phases of a step, leak check) and ``zoo fit --profile`` (Lightning's profilers, a trace)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from zoo.cli import main
from zoo.lightning_cli import ZooLightningCLI
from zoo.profiling import format_profile, profile_recipe
from zoo.tasks import ImageClassifier


@pytest.fixture
def tiny(repo: Path) -> list[str]:
    return ["--config", str(repo / "recipes/quickstart.yaml"), "--data.init_args.batch_size", "8",
            "--data.init_args.num_workers", "0"]  # fmt: skip


def test_a_profile_splits_the_step_into_its_phases(tiny: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    profile = profile_recipe(tiny, steps=6, warmup=2)
    phases = profile.phases_ms
    assert list(phases) == ["data", "forward", "backward", "optimizer", "callbacks and hooks", "Lightning loop"]
    assert phases["forward"] > 0 and phases["backward"] > 0 and all(v >= 0 for v in phases.values())
    assert sum(phases.values()) == pytest.approx(profile.step_ms, rel=0.05)
    assert profile.batch_size == 8 and profile.steps == 6 and profile.syncs_per_step is None
    assert profile.peak_resident_mb > 100
    text = format_profile(profile)
    assert all(name in text for name in phases) and "n/a on CPU" in text

    main(["profile", *tiny, "--steps", "3", "--warmup", "1", "--json"])
    printed = json.loads(_json_tail(capsys))
    assert printed["steps"] == 3 and set(printed["phases_ms"]) == set(phases)


def _json_tail(capsys: pytest.CaptureFixture[str]) -> str:
    out = capsys.readouterr().out
    return out[out.index("{") :]


def test_the_leak_check_sees_no_growth_in_zoo_and_sees_a_leak_it_is_shown(
    tiny: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = profile_recipe(tiny, steps=30, warmup=3, leak_check=True)
    assert len(clean.memory_mb) == 30 and clean.memory_kind == "heap in use"
    assert abs(clean.leak_mb_per_step) * 30 < 8, clean.memory_mb  # under 8 MB over the run
    assert not any("grows" in line for line in clean.advice)

    kept: list[torch.Tensor] = []
    step = ImageClassifier.training_step

    def leaky(self, batch, batch_idx):  # a user's step that keeps 8 MB alive per step
        kept.append(torch.ones(1 << 21))
        return step(self, batch, batch_idx)

    monkeypatch.setattr(ImageClassifier, "training_step", leaky)
    leaking = profile_recipe(tiny, steps=30, warmup=3, leak_check=True)
    assert leaking.leak_mb_per_step == pytest.approx(8.0, rel=0.1)  # the heap in use, whatever was freed before
    assert any("memory (heap in use) grows" in line for line in leaking.advice)


def test_fit_with_the_pytorch_profiler_writes_a_trace_tensorboard_reads(
    tiny: list[str], quick_fit: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    args = ["fit", *tiny, *quick_fit, "--trainer.limit_train_batches", "6", "--trainer.max_epochs", "1"]
    ZooLightningCLI(args=[*args, "--profile", "pytorch", "--test_after_fit", "false"])
    run = tmp_path / "runs" / "quickstart" / "version_0"
    traces = list((run / "profile").glob("*.pt.trace.json"))
    assert traces and "traceEvents" in json.loads(traces[0].read_text())
    out = capsys.readouterr().out
    assert "profiler trace" in out and "aten::" in out  # the top-operator table
    with pytest.raises(SystemExit) as stopped:
        ZooLightningCLI(args=[*args, "--profile", "fast"])
    assert stopped.value.code == 2
    assert "--profile 'fast': choose one of simple, advanced, pytorch" in capsys.readouterr().err
