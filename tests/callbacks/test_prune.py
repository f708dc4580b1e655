"""Pruning: the schedule, exact resume, the EMA kept sparse, and structured pruning that shrinks the export."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch

import export
from zoo import create_model
from zoo.callbacks import Prune, ResumableCheckpoint
from zoo.cli import main
from zoo.data import CIFAR10DataModule
from zoo.errors import ConfigError
from zoo.lightning_cli import ZooLightningCLI
from zoo.optim import WarmupCosineLR
from zoo.pruning import apply_masks, mask_sparsity, remove_pruned_channels, structured_masks, unstructured_masks
from zoo.tasks import ImageClassifier

FAST = ["--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1", "--test_after_fit", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--data.init_args.batch_size", "32", "--data.init_args.num_workers", "0"]  # fmt: skip


def _fit(repo: Path, root: Path, epochs: int, prune: dict, *extra: str) -> ZooLightningCLI:
    torch.manual_seed(0)
    callback = json.dumps({"class_path": "zoo.callbacks.Prune", "init_args": prune})
    return ZooLightningCLI(args=["fit", "--config", str(repo / "recipes/quickstart.yaml"), "--trainer.max_epochs",
                                 str(epochs), "--trainer.callbacks+", callback, "--trainer.default_root_dir", str(root),
                                 *FAST, *extra])  # fmt: skip


def _weights(path: str, key: str = "state_dict") -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)[key]


def test_unstructured_masks_rank_globally_and_only_grow() -> None:
    torch.manual_seed(0)
    model = create_model("speedrun_net_tiny", num_classes=10)
    masks = unstructured_masks(model, 0.3)
    assert mask_sparsity(masks) == pytest.approx(0.3, abs=1e-5)  # int(0.3 * count) weights
    head = "head.weight" if "head.weight" in dict(model.named_parameters()) else None
    assert head is None or head not in masks  # the classifier stays whole
    apply_masks(model.state_dict(), masks)
    more = unstructured_masks(model, 0.6)
    assert all(bool((more[name] <= mask).all()) for name, mask in masks.items())  # pruned stays pruned
    with pytest.raises(ConfigError, match=r"sparsity must be in \[0, 1\), got 1.0"):
        unstructured_masks(model, 1.0)


@pytest.mark.parametrize("name", ["speedrun_net_tiny", "resnet18_cifar"])
def test_removing_structurally_pruned_channels_keeps_the_function_and_cuts_flops(name: str) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = create_model(name, num_classes=10).eval()
    images = torch.randn(2, 3, 32, 32)

    def flops() -> int:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(images)
        return counter.get_total_flops()

    masks = structured_masks(model, 0.5, (images,))
    apply_masks(model.state_dict(), masks)
    with torch.no_grad():
        expected = model(images)
    parameters, before = sum(p.numel() for p in model.parameters()), flops()
    assert remove_pruned_channels(model, (images,)) > 0
    with torch.no_grad():
        assert torch.allclose(model(images), expected, atol=1e-5)  # the zero channels computed nothing
    assert sum(p.numel() for p in model.parameters()) < 0.35 * parameters and flops() < 0.35 * before
    with pytest.raises(ConfigError, match="prune it unstructured"):
        structured_masks(create_model("vit_tiny_cifar", num_classes=10), 0.5, (images,))


def test_the_schedule_is_reached_and_the_ema_and_checkpoint_are_as_sparse(repo: Path, tmp_path: Path) -> None:
    prune = Prune(sparsity=0.6, start_epoch=0, end_epoch=2)
    assert [round(prune.target_at(e), 4) for e in range(3)] == [0.0, 0.525, 0.6] and prune.target_at(3) is None
    ema = json.dumps({"class_path": "zoo.callbacks.EMA", "init_args": {"decay": 0.9}})
    cli = _fit(repo, tmp_path, 3, {"sparsity": 0.6, "end_epoch": 2}, "--trainer.callbacks+", ema)
    callback = next(c for c in cli.trainer.callbacks if isinstance(c, Prune))
    assert callback.current_sparsity == pytest.approx(0.6, abs=1e-4) and callback.pruned_epoch == 2
    last = cli.trainer.checkpoint_callback.last_model_path
    for key in ("state_dict", "current_model_state"):  # the EMA average and the trained weights
        weights = _weights(last, key)
        pruned = sum(int((weights[f"backbone.{n}"][~m]).count_nonzero()) for n, m in callback.masks.items())
        assert pruned == 0, key
    stored = torch.load(last, weights_only=True)["zoo_pruning"]
    assert stored["method"] == "unstructured" and stored["sparsity"] == pytest.approx(0.6, abs=1e-4)


def _library_run(root: Path, max_steps: int, ckpt_path: str | None = None, every: int | None = None) -> L.Trainer:
    """12 steps of 6 per epoch; the sparsity is 20% in epoch 0 and 50% from epoch 1."""
    L.seed_everything(0)
    task = ImageClassifier("speedrun_net_tiny", optimizer=partial(torch.optim.SGD, lr=0.1, momentum=0.9),
                           lr_scheduler=partial(WarmupCosineLR, warmup_steps=3, total_steps=12))  # fmt: skip
    trainer = L.Trainer(
        accelerator="cpu", max_steps=max_steps, limit_train_batches=6, limit_val_batches=1, logger=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[Prune(0.5, start_sparsity=0.2, end_epoch=1),
                   ResumableCheckpoint(dirpath=root, every_n_train_steps=every, save_top_k=0)],
    )  # fmt: skip
    trainer.fit(task, CIFAR10DataModule(variant="mini", batch_size=16, num_workers=0), ckpt_path=ckpt_path)
    return trainer


def test_resuming_mid_schedule_and_mid_epoch_continues_exactly(tmp_path: Path) -> None:
    straight = _library_run(tmp_path / "straight", 12)
    _library_run(tmp_path / "stopped", 9, every=9)  # stops in epoch 1, after its pruning step
    resumed = _library_run(tmp_path / "stopped", 12, ckpt_path=str(tmp_path / "stopped" / "last.ckpt"))
    expected, got = straight.lightning_module.state_dict(), resumed.lightning_module.state_dict()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    prune = next(c for c in resumed.callbacks if isinstance(c, Prune))
    assert prune.current_sparsity == pytest.approx(0.5, abs=1e-4) and prune.pruned_epoch == 1


def test_zoo_prune_fine_tunes_and_the_export_is_smaller(
    trained_cnn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["prune", "--ckpt_path", str(trained_cnn), "--sparsity", "0.5", "--finetune_epochs", "1", "--out",
          str(tmp_path / "runs"), "--", *FAST])  # fmt: skip
    printed = capsys.readouterr().out
    assert "exported network:" in printed and "% of the FLOPs)" in printed
    pruned = Path(printed.split("pruned checkpoint: ")[1].split()[0])
    assert pruned.is_relative_to(tmp_path / "runs/speedrun_net_tiny-structured-0.5")  # --out, not the original run
    main(["export", "--ckpt_path", str(pruned), "--out", str(tmp_path / "small"), "--format", "onnx"])
    main(["export", "--ckpt_path", str(trained_cnn), "--out", str(tmp_path / "full"), "--format", "onnx"])
    small, full = (tmp_path / name / "speedrun_net_tiny.onnx" for name in ("small", "full"))
    assert small.stat().st_size < 0.4 * full.stat().st_size
    assert export.load(small).metadata["pruning"]["method"] == "structured"
    with pytest.raises(SystemExit) as exit_info:
        main(["prune", "--ckpt_path", str(trained_cnn), "--sparsity", "1.5"])
    assert exit_info.value.code == 2
