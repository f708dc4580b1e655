"""The docs build strictly, and the README's commands and example are the ones that work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


def _code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", markdown, flags=re.S)


def test_mkdocs_builds_strictly_with_generated_tables(repo: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(repo / "docs/mkdocs.yml"), "-d", str(site)],
        check=True,
        capture_output=True,
        text=True,
    )
    registry_page = (site / "registry" / "index.html").read_text()
    assert "resnet18_cifar" in registry_page and "zoo:models" not in registry_page
    recipes_page = (site / "recipes" / "index.html").read_text()
    assert "recipes/cifar10/resnet18.yaml" in recipes_page and "zoo:recipe-results" not in recipes_page


def test_readme_gives_exactly_the_two_commands_and_ci_runs_the_second(repo: Path) -> None:
    readme = (repo / "README.md").read_text()
    section = readme.split("## Two commands")[1].split("\n## ")[0]
    first, second = _code_blocks(section, "bash")
    assert first.strip() == (
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/zoo fit --config recipes/quickstart.yaml"
    )
    ci = (repo / ".ci" / "run").read_text()
    assert second.strip() in ci.splitlines()


def test_readme_library_example_runs(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (example,) = [block for block in _code_blocks((repo / "README.md").read_text(), "python") if "Trainer" in block]
    short = "max_steps=2, limit_val_batches=2, limit_test_batches=2, enable_progress_bar=False"
    assert "max_epochs=10" in example
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example.replace("max_epochs=10", short), "README.md", "exec"), namespace)
    assert list(tmp_path.glob("runs/mine/version_0/checkpoints/*.ckpt"))
    assert "test/acc1" in namespace["trainer"].callback_metrics


def test_finetuning_page_examples_run(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo

    blocks = [b for b in _code_blocks((repo / "docs/pages/finetuning.md").read_text(), "python") if "Trainer" in b]
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    zoo.save_weights(zoo.create_model("resnet18_cifar"), "pretrained.safetensors")  # "an earlier run"
    short = (
        "max_epochs=2, limit_train_batches=2, limit_val_batches=1, logger=False, enable_progress_bar=False, "
        "enable_checkpointing=False"
    )
    for block in blocks:
        assert "max_epochs=3" in block
        namespace: dict = {}
        exec(compile(block.replace("max_epochs=3", short), "finetuning.md", "exec"), namespace)
        assert namespace["trainer"].current_epoch == 2
    assert (tmp_path / "finetuned.safetensors").is_file()


def test_the_add_a_task_example_trains_and_exports_with_no_other_edit(repo: Path, tmp_path: Path) -> None:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from export.formats import write
    from export.specs import export_spec
    from export.verify import verify_artifact
    from zoo.data import DataFacts

    (example,) = [
        b for b in _code_blocks((repo / "docs/pages/architecture.md").read_text(), "python") if "ZooTask" in b
    ]
    namespace: dict = {}
    exec(compile(example, "architecture.md", "exec"), namespace)
    task = namespace["ImageRegressor"]("speedrun_net_tiny")
    task.adopt_data_facts(DataFacts(in_chans=3, image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3))
    data = TensorDataset(torch.randn(8, 3, 32, 32), torch.randn(8))
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(task, DataLoader(data, batch_size=4), DataLoader(data, batch_size=4))
    assert (
        torch.isfinite(trainer.callback_metrics["val/loss"])
        and task.count_samples(next(iter(DataLoader(data, 4)))) == 4
    )
    spec = export_spec(task)
    write("exported_program", spec, {"model_name": task.backbone_name}, tmp_path / "regressor.pt2")
    assert verify_artifact("exported_program", tmp_path / "regressor.pt2", spec).passed
    assert task.inference_signature().to_dict()["preprocessing"]["mean"] == [0.5] * 3


def test_the_repository_is_ruff_clean(repo: Path) -> None:
    """`ruff check` and `ruff format --check` pass on the whole repository (the house style, kept by a test)."""
    for command in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command, str(repo)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
