"""The benchmark scripts run end to end in their smoke mode and print complete records (not timed tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.data import ShapesDataModule
from zoo.tasks import DiffusionModel

REPO = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_fid_floor_smoke(tmp_path: Path) -> None:
    record = _run("fid_floor.py", "--smoke", "--out", str(tmp_path / "floor.jsonl"))
    assert record["metric"] == "fid_zoo_classifier" and record["value"] > 0 and record["variant"] == "mini"
    assert json.loads((tmp_path / "floor.jsonl").read_text()) == record


def test_shapes_sample_accuracy_smoke(tmp_path: Path, trainer_factory) -> None:
    data = ShapesDataModule(image_size=16, num_train=32, num_val=8, num_test=8, batch_size=16, num_workers=0)
    task = DiffusionModel("unet_tiny", image_size=16, num_classes=3, conditional=True, mean=data.mean, std=data.std,
                          sample_every_n_epochs=0)  # fmt: skip
    trainer = trainer_factory(max_steps=1, limit_val_batches=0)
    trainer.fit(task, data)
    trainer.save_checkpoint(tmp_path / "tiny.ckpt")
    record = _run("shapes_sample_accuracy.py", str(tmp_path / "tiny.ckpt"), "--smoke")
    assert 0 <= record["sample_accuracy"] <= 1 and set(record["per_class"]) == {"disc", "square", "triangle"}
    assert torch.isfinite(torch.tensor(record["judge_test_accuracy"]))


def test_export_latency_smoke(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "export_latency.py"), "--smoke", "--out", str(tmp_path / "l.jsonl")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    records = [json.loads(line) for line in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert [r["model"] for r in records] == ["speedrun_net_tiny", "gpt_nano"]
    assert set(records[1]["median_ms"]) == {"eager", "torchscript", "onnxruntime", "onnxruntime+transformer-opt"}
    assert all(v > 0 for r in records for v in r["median_ms"].values()) and "gpt_nano" in done.stdout
    assert all(r["gflop_per_call"] > 0 and set(r["gflops"]) == set(r["median_ms"]) for r in records)
    assert set(records[0]["fp32_matmul_ceiling_gflops"]) == {"torch", "onnxruntime"}


def test_side_by_side_smoke_runs_every_case_on_cpu(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from side_by_side import CASES

    # Compiling ResNet-50 on 2 CPU cores takes minutes; that case differs from resnet50-224 only by the task's
    # `compile` flag (and `model.compile()` in the plain loop).
    cases = [name for name in CASES if name != "resnet50-224-compiled"]
    out = tmp_path / "side.jsonl"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "side_by_side.py"), "--smoke", "--out", str(out), "--cases", *cases],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["case"] for r in records] == cases
    for record in records:
        rates = record["samples_per_second"]
        assert rates["zoo"] > 0 and rates["plain"] > 0 and record["per_round"] == {k: [v] for k, v in rates.items()}
        assert record["zoo_over_plain"] == pytest.approx(rates["zoo"] / rates["plain"], abs=1e-3)
        step_ms = record["step_ms"]
        assert step_ms["zoo"] == pytest.approx(1000 * record["batch_size"] / rates["zoo"], rel=1e-3)
        assert record["overhead_ms_per_step"] == pytest.approx(step_ms["zoo"] - step_ms["plain"], abs=1e-2)
    by_case = {r["case"]: r for r in records}
    assert by_case["gpt2-124m"]["train_flops_per_sample"] > 0  # the tasks that count FLOPs report them
    assert 200 < by_case["gcn-large-graph"]["batch_size"] < 300  # a full graph of 500 nodes counts its training half
    assert not (tmp_path / "runs").exists()  # logs and checkpoints went to a temporary folder


def test_time_to_accuracy_smoke(tmp_path: Path) -> None:
    out = tmp_path / "tta.jsonl"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "time_to_accuracy.py"), str(REPO / "recipes" / "quickstart.yaml"),
         "--smoke", "--seeds", "1", "--target", "0.0", "--within", "1e9", "--out", str(out)],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["recipe"] == "recipes/quickstart.yaml" and record["seeds"] == 1
    for side in ("zoo", "plain"):
        timelines = record[side]["timelines"]
        assert len(timelines) == 1 and all(len(line) == 2 for line in timelines)  # 1 seed x 2 epochs
        for (first_seconds, first_acc), (second_seconds, second_acc) in timelines:  # clock only moves forward
            assert 0 < first_seconds < second_seconds and 0 <= first_acc <= 1 and 0 <= second_acc <= 1
        reached = record[side]["seconds_to_target"]["per_seed"]
        assert reached == [line[0][0] for line in timelines]  # a target of 0 is reached at the first epoch
        best = record[side]["best_accuracy_within_seconds"]["1000000000.0"]["per_seed"]
        assert best == [max(a for _, a in line) for line in timelines]


def test_recipe_seeds_passes_zoo_fit_overrides_through(tmp_path: Path) -> None:
    overrides = ["--trainer.max_epochs", "2", "--trainer.logger", "false", "--data.init_args.name", "Cora"]
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/recipe_seeds.py"), str(REPO / "recipes/cora/gcn.yaml"), "--seeds", "1",
         "--out", str(tmp_path / "seeds.jsonl"), *overrides],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["overrides"] == overrides and len(record["values"]) == 1
    assert record["command"].endswith(
        "--seeds 1 --trainer.max_epochs 2 --trainer.logger false --data.init_args.name Cora"
    )
    saved = (tmp_path / "runs/cora/gcn/version_0/config.yaml").read_text()
    assert "max_epochs: 2\n" in saved and "logger: false" in saved


def test_side_by_side_process_mode_times_both_whole_processes(tmp_path: Path) -> None:
    out = tmp_path / "process.jsonl"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "side_by_side.py"), "--process", "--smoke", "--cases", "cora-gcn",
         "--out", str(out)],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["benchmark"] == "side_by_side_process" and record["commands"]["zoo"].endswith(
        "--trainer.max_epochs 3"
    )
    assert "pyg_planetoid.py --model gcn" in record["commands"]["plain"]
    assert record["seconds"]["zoo"] > 0 and record["seconds"]["plain"] > 0
    assert record["plain_over_zoo"] == pytest.approx(record["seconds"]["plain"] / record["seconds"]["zoo"], abs=1e-2)
    assert all(0 <= accuracy <= 1 for accuracy in record["test_acc1"].values())


def test_tracking_overhead_smoke(tmp_path: Path) -> None:
    record = _run("tracking_overhead.py", "--smoke", "--out", str(tmp_path / "t.jsonl"))
    assert set(record["samples_per_second"]) == {"none@50", "mlflow@50", "none@1", "mlflow@1"}
    assert all(v > 0 for v in record["tracked_over_untracked"].values()) and record["environment_record_ms"] > 0
    assert record["fingerprint_seconds"]["cifar10-mini (12,000 images)"] > 0


def test_activation_checkpointing_smoke(tmp_path: Path) -> None:
    out = tmp_path / "ac.jsonl"
    _run("activation_checkpointing.py", "--smoke", "--out", str(out))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["case"] for r in records] == ["gpt_mini"]
    for record in records:
        assert record["on"]["peak_rss_mb"] > 0 and record["off"]["step_s"] > 0
        assert record["on"]["parameters"] == record["off"]["parameters"]
