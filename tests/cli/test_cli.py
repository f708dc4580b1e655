from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
import yaml

from zoo.cli import main
from zoo.data import CIFAR10DataModule
from zoo.lightning_cli import ZooLightningCLI

HEAVY = (
    "torch",
    "lightning",
    "timm",
    "transformers",
    "diffusers",
    "torch_geometric",
    "onnxruntime",
    "tensorboard",
    "mlflow",
    "optuna",
    "ray",
    "captum",
)


@pytest.fixture
def few_steps(quick_fit: list[str]) -> list[str]:
    """A few steps of the quickstart recipe: enough to exercise every part of `zoo fit`."""
    return [*quick_fit, "--trainer.max_steps", "3"]


def _python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, check=True)


def test_import_zoo_and_help_load_no_heavy_library() -> None:
    code = (
        "import sys, zoo; from zoo.cli import main; main(['--help']); "
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = _python(code).stdout
    assert "LOADED []" in out
    assert "fit" in out and "models" in out


def test_listing_models_does_not_load_other_families() -> None:
    out = _python("import sys, zoo; zoo.list_models(); print([m for m in ('transformers', 'diffusers', "
                  "'torch_geometric') if m in sys.modules])").stdout  # fmt: skip
    assert out.strip() == "[]"


def test_a_second_zoo_models_reads_its_listing_without_importing_torch(tmp_path: Path) -> None:
    code = "import sys; from zoo.cli import main; main(['models', {args}]); print('TORCH', 'torch' in sys.modules)"
    env = {**os.environ, "ZOO_CACHE": str(tmp_path)}
    run = partial(subprocess.run, capture_output=True, text=True, check=True, env=env)
    first = run([sys.executable, "-c", code.format(args="'--json'")]).stdout
    warm = run([sys.executable, "-c", code.format(args="'--json'")]).stdout
    assert first.endswith("TORCH True\n") and warm.endswith("TORCH False\n")
    assert warm.replace("False", "True") == first  # the same listing
    gcn = run([sys.executable, "-c", code.format(args="'gcn', '--json'")]).stdout
    assert json.loads(gcn.rpartition("TORCH")[0])[0] == {
        "name": "gcn", "family": "gnn", "tasks": ["node_classification"], "num_params": 23063,
        "input_spec": {"shape": [1433], "dtype": "float32"}, "defaults": {"in_channels": 1433, "num_classes": 7},
        "recipe": "recipes/cora/gcn.yaml",
        "description": "Graph convolutional network, 2 layers, 16 hidden (Kipf and Welling).",
    }  # fmt: skip


def test_console_script_and_module_entry_points(repo: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "zoo", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("zoo 0.")


def test_unknown_command_suggests_the_closest() -> None:
    with pytest.raises(SystemExit, match="unknown command 'fitt'; did you mean 'fit'"):
        main(["fitt"])


def test_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    main(["models", "--family", "cnn"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "family", "tasks", "params", "input", "recipe"]
    row = next(line.split() for line in lines if line.startswith("resnet18_cifar "))
    assert row[1:] == ["cnn", "image_classification", "11.17M", "3x32x32", "float32", "recipes/cifar10/resnet18.yaml"]


def test_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    main(["models", "speedrun*", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == ["speedrun_net", "speedrun_net_tiny"]
    assert data[0]["recipe"] == "recipes/cifar10/speedrun_net.yaml" and data[0]["num_params"] == 1_978_016


def test_models_unknown_family_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["models", "--family", "rnn"])
    assert "unknown family 'rnn'" in capsys.readouterr().err


def test_fit_links_data_into_model_saves_config_and_reports(
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    few_steps: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = ZooLightningCLI(args=["fit", "--config", str(repo / "recipes/quickstart.yaml"), *few_steps])
    assert cli.model.num_classes == 10 and cli.model.in_chans == 3  # linked from the data module
    run_dir = tmp_path / "runs" / "quickstart" / "version_0"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["seed_everything"] == 0
    assert config["model"]["init_args"]["backbone"] == "speedrun_net_tiny"
    assert config["checkpoint"]["monitor"] == "val/acc1"
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert "test/acc1" in cli.trainer.callback_metrics
    out = capsys.readouterr()
    summary = out.out + out.err
    assert "test/acc1" in summary and "last checkpoint" in summary and str(Path("runs/quickstart/version_0")) in summary


def test_random_seed_is_recorded_in_the_saved_config(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, few_steps: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(repo / "recipes/quickstart.yaml"), "--seed_everything", "true", *few_steps]
    ZooLightningCLI(args=[*args, "--test_after_fit", "false"])
    config = yaml.safe_load((tmp_path / "runs/quickstart/version_0/config.yaml").read_text())
    assert isinstance(config["seed_everything"], int) and not isinstance(config["seed_everything"], bool)


def test_saved_config_is_never_overwritten(
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    few_steps: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(repo / "recipes/quickstart.yaml"), *few_steps, "--test_after_fit", "false"]
    args += ["--trainer.logger.init_args.version", "fixed"]
    ZooLightningCLI(args=args)
    saved = (tmp_path / "runs/quickstart/fixed/config.yaml").read_text()
    with pytest.raises(SystemExit) as stopped:
        ZooLightningCLI(args=args)
    assert stopped.value.code == 2
    assert "run folder runs/quickstart/fixed already holds a run" in capsys.readouterr().err
    assert (tmp_path / "runs/quickstart/fixed/config.yaml").read_text() == saved


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("model", "label_smoothing", "Option 'label_smothing' is not accepted"),
        ("trainer", "max_epochs", "does not accept option 'trainer.max_epoch'"),
    ],
)
def test_misspelt_recipe_key_is_named(
    section: str, key: str, message: str, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = yaml.safe_load((repo / "recipes/quickstart.yaml").read_text())
    block = recipe[section]["init_args"] if section == "model" else recipe[section]
    block[key.replace("smoothing", "smothing").replace("epochs", "epoch")] = block.pop(key)
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(SystemExit):
        ZooLightningCLI(args=["fit", "--config", str(path)])
    assert message in capsys.readouterr().err


def test_unknown_model_in_recipe_is_named(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(repo / "recipes/quickstart.yaml"), "--model.init_args.backbone", "resnet18_cifr"]
    with pytest.raises(ValueError, match=r"unknown model 'resnet18_cifr'.*did you mean 'resnet18_cifar'"):
        ZooLightningCLI(args=args)
    assert not (tmp_path / "runs").exists()


def test_fit_without_recipe_links_greyscale_data_and_skips_missing_test_split(
    image_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (image_tree / "test").rename(image_tree / "val")
    monkeypatch.chdir(tmp_path)
    cli = ZooLightningCLI(
        args=[
            "fit",
            "--model", "zoo.tasks.ImageClassifier", "--model.init_args.backbone", "speedrun_net_tiny",
            "--data", "zoo.data.ImageFolderDataModule", "--data.init_args.root", str(image_tree),
            "--data.init_args.in_chans", "1", "--data.init_args.image_size", "32",
            "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0",
            "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
        ]
    )  # fmt: skip
    assert cli.model.in_chans == 1 and cli.model.backbone.stem[0].in_channels == 1
    assert "val/acc1" in cli.trainer.callback_metrics and "test/acc1" not in cli.trainer.callback_metrics
    assert "best checkpoint" in capsys.readouterr().out
    assert (tmp_path / "runs" / "zoo" / "version_0" / "config.yaml").is_file()


def test_validate_test_and_predict_from_a_checkpoint(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, few_steps: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = ["--config", str(repo / "recipes/quickstart.yaml"), *few_steps]
    ZooLightningCLI(args=["fit", *recipe, "--test_after_fit", "false"])
    ckpt = str(tmp_path / "runs/quickstart/version_0/checkpoints/last.ckpt")
    validated = ZooLightningCLI(args=["validate", *recipe, "--ckpt_path", ckpt])
    assert "val/acc1" in validated.trainer.callback_metrics
    tested = ZooLightningCLI(args=["test", *recipe, "--ckpt_path", ckpt])
    assert "test/acc1" in tested.trainer.callback_metrics
    predicted = ZooLightningCLI(args=["predict", *recipe, "--ckpt_path", ckpt, "--trainer.limit_predict_batches", "1"])
    (probabilities,) = predicted.trainer.predict_loop.predictions
    assert probabilities.shape == (32, 10) and torch.allclose(probabilities.sum(dim=1), torch.ones(32))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["sample", "--ckpt_path", "c.ckpt", "--out", "o", "--steps", "0"], "argument --steps: must be >= 1, got 0"),
        (["generate", "--ckpt_path", "c.ckpt", "--temperature", "-1"], "argument --temperature: must be >= 0.0"),
        (["generate", "--ckpt_path", "c.ckpt", "--max_new_tokens", "-5"], "argument --max_new_tokens: must be >= 0"),
        (["generate", "--ckpt_path", "c.ckpt", "--top_k", "many"], "argument --top_k: expected a whole number"),
        (["fit", "--config", "recipes/quickstart.yaml", "--trainer.max_epoch", "1"], "unrecognized arguments"),
    ],
)
def test_values_out_of_range_and_abbreviated_keys_are_refused(
    command: list[str], message: str, repo: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "zoo", *command], capture_output=True, text=True, cwd=repo, timeout=120
    )
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "o").exists()


def test_library_calls_refuse_the_same_values() -> None:
    from zoo.tasks import DiffusionModel, LanguageModel

    lm = LanguageModel("gpt_nano", vocab_size=11, block_size=8)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        lm.generate(torch.zeros(1, 2, dtype=torch.long), max_new_tokens=2, temperature=-1)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 0"):
        lm.generate(torch.zeros(1, 2, dtype=torch.long), max_new_tokens=-5)
    unet = DiffusionModel("unet_tiny", image_size=16, backbone_kwargs={"block_out_channels": [8, 8, 8],
                                                                        "norm_num_groups": 4})  # fmt: skip
    with pytest.raises(ValueError, match="0 sampling steps asked for"):
        unet.sample(1, steps=0)
    with pytest.raises(ValueError, match="val_split must be a share in \\[0, 1\\) or a whole number"):
        CIFAR10DataModule(variant="mini", val_split=1.5)


def test_an_unbounded_run_says_so(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    cli = ZooLightningCLI(
        args=["--config", str(repo / "recipes/quickstart.yaml"), "--trainer.max_epochs", "-1"], run=False
    )
    cli.before_fit()
    assert "training runs until it is stopped" in capsys.readouterr().out
