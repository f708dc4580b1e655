"""`zoo leaderboard run` and `show` on a tiny suite with the real CLI and Trainer."""

from __future__ import annotations

import json
import mmap
import resource
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from zoo.cli import main as zoo_main
from zoo.leaderboard.rows import REQUIRED_FIELDS, read_rows
from zoo.leaderboard.suites import load_suite
from zoo.memory import PeakResidentMemory
from zoo.provenance import git_state

REPO = Path(__file__).resolve().parents[2]
TINY_SUITE = """
name: tiny
budgets:
  cpu: ["--trainer.accelerator", "cpu", "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false"]
recipes:
  - recipe: recipes/cora/gcn.yaml
    metric: test/acc1
  - recipe: recipes/motifs/gin.yaml
    metric: test/acc1
    overrides:
      cpu: ["--data.init_args.num_graphs", "60", "--data.init_args.batch_size", "16"]
"""


@pytest.mark.slow
def test_a_tiny_suite_writes_complete_rows_and_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY_SUITE)
    monkeypatch.chdir(tmp_path)  # runs/ goes here; suites and recipes come from the clone zoo is installed from
    zoo_main(["leaderboard", "run", "--suite", str(tmp_path / "tiny.yaml"), "--seeds", "2", "--first_seed", "1",
              "--out", str(tmp_path / "results" / "tiny.jsonl")])  # fmt: skip
    rows = read_rows(tmp_path / "results" / "tiny.jsonl")
    assert [(r["recipe"], r["seed"]) for r in rows] == [
        ("recipes/cora/gcn.yaml", 1), ("recipes/cora/gcn.yaml", 2),
        ("recipes/motifs/gin.yaml", 1), ("recipes/motifs/gin.yaml", 2),
    ]  # fmt: skip
    for row in rows:
        assert set(REQUIRED_FIELDS) <= set(row)
        assert row["git"]["commit"] and len(row["recipe_sha256"]) == 64 and row["packages"]["torch"]
        assert 0 <= row["quality"]["value"] <= 1 and row["train_seconds"] > 0 and row["params"] > 0
        assert row["command"].startswith(f"zoo fit --config {row['recipe']} --seed_everything {row['seed']}")
        assert row["export"] == {"onnx": "pass", "torchscript": "pass", "exported_program": "pass"}
    page = tmp_path / "docs" / "leaderboard.md"
    zoo_main(["leaderboard", "show", "--suites", "tiny", "--results", str(tmp_path / "results"), "--page", str(page)])
    text = page.read_text()
    assert "`recipes/cora/gcn.yaml` | cpu" in text and "± " in text and "| 2 |" in text
    with Image.open(tmp_path / "docs" / "img" / "leaderboard_tiny.png") as plot:
        assert plot.format == "PNG" and plot.width > 300


def test_corrupt_rows_and_missing_recipes_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "tiny.jsonl"
    results.write_text('{"suite": "tiny", "recipe": "recipes/cora/gcn.yaml", "seed": "0"}\n')
    with pytest.raises(ValueError, match=r"tiny\.jsonl:1: incomplete leaderboard row: missing recipe_sha256, .*"
                                         r"wrong type: seed \(str\)"):  # fmt: skip
        read_rows(results)
    results.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"tiny\.jsonl:1: not valid JSON"):
        read_rows(results)
    suite = tmp_path / "broken.yaml"
    suite.write_text(TINY_SUITE.replace("recipes/motifs/gin.yaml", "recipes/motifs/nope.yaml"))
    with pytest.raises(FileNotFoundError, match=r"recipes\[1\] names recipes/motifs/nope\.yaml, which does not exist"):
        load_suite(str(suite), REPO)
    with pytest.raises(SystemExit):
        zoo_main(["leaderboard", "run", "--suite", "no_such_suite"])
    assert "suite 'no_such_suite' not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        zoo_main(["leaderboard", "run", "--suite", "cora", "--recipes", "recipes/cora/gcn.yaml", "recipes/gcn.yaml"])
    assert "suite cora has no recipes ['recipes/gcn.yaml']; it has ['recipes/cora/gcn.yaml'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"quality": {"metric": "test/acc1", "value": "0.82", "higher_is_better": True}}, "quality.value is '0.82'"),
        ({"quality": {"metric": "test/acc1", "value": True, "higher_is_better": True}}, "quality.value is True"),
        ({"metrics": {"test/acc1": "n/a"}}, "metrics.test/acc1 is 'n/a'"),
        ({"hardware": {"cpu": "x86_64"}}, "hardware.cpu_threads missing"),
        ({"train_seconds": "15 s"}, "wrong type: train_seconds (str)"),
    ],
)
def test_a_row_with_a_non_numeric_or_missing_field_is_named_by_file_and_line(
    tmp_path: Path, change: dict, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (REPO / "benchmarks" / "results" / "cora.jsonl").read_text().splitlines()[0]
    results = tmp_path / "results"
    results.mkdir()
    (results / "cora.jsonl").write_text(f"{good}\n{json.dumps({**json.loads(good), **change})}\n")
    with pytest.raises(SystemExit) as stopped:
        zoo_main(
            ["leaderboard", "show", "--suites", "cora", "--results", str(results), "--page", str(tmp_path / "p.md")]
        )
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "cora.jsonl:2: " in err and named in err
    assert not (tmp_path / "p.md").exists()


def test_show_outside_the_clone_writes_into_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = REPO / "docs" / "pages" / "leaderboard.md"
    before = page.read_bytes()
    (tmp_path / "leaderboard").mkdir()
    (tmp_path / "leaderboard" / "cora.jsonl").write_bytes((REPO / "benchmarks/results/cora.jsonl").read_bytes())
    monkeypatch.chdir(tmp_path)  # not the clone zoo is installed from
    zoo_main(["leaderboard", "show", "--suites", "cora"])
    assert "`recipes/cora/gcn.yaml` | cpu" in (tmp_path / "leaderboard" / "leaderboard.md").read_text()
    assert (tmp_path / "leaderboard" / "img" / "leaderboard_cora.png").is_file()
    assert page.read_bytes() == before


@pytest.mark.parametrize("suite", sorted(p.stem for p in (REPO / "benchmarks" / "suites").glob("*.yaml")))
def test_shipped_suites_name_existing_recipes(suite: str) -> None:
    loaded = load_suite(suite, REPO)
    assert {"cpu", "gpu"} <= set(loaded.budgets) and loaded.recipes
    json.dumps([entry.__dict__ for entry in loaded.recipes])  # plain data all through


def test_rows_appended_to_results_do_not_make_the_tree_dirty(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "cora.jsonl").write_text("{}\n")
    (tmp_path / "recipe.yaml").write_text("a: 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    (tmp_path / "benchmarks" / "results" / "cora.jsonl").write_text("{}\n{}\n")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "recipe.yaml").write_text("a: 2\n")
    assert git_state(tmp_path)["dirty"] is True


def _touched_anonymous_memory(mib: int) -> mmap.mmap:
    """Fresh resident pages straight from the kernel (an allocator could hand back pages it kept resident)."""
    memory = mmap.mmap(-1, mib * 2**20)
    for offset in range(0, len(memory), mmap.PAGESIZE):
        memory[offset] = 1
    return memory


def test_peak_resident_memory_is_per_block_not_per_process() -> None:
    _touched_anonymous_memory(300).close()  # the process's lifetime peak now includes 300 MiB
    with PeakResidentMemory() as before:
        pass
    with PeakResidentMemory(interval=0.005) as during:
        block = _touched_anonymous_memory(200)
        time.sleep(0.05)
        block.close()
    assert during.peak_mb >= before.peak_mb + 150  # saw the 200 MiB block
    assert before.peak_mb < resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - 150  # not the old peak
