from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = """
import sys
import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from zoo.callbacks import EMA, MixupCutmix
from zoo.data import CIFAR10DataModule
from zoo.tasks import ImageClassifier

out = sys.argv[1]
ema = EMA(decay=0.9)


class SaveAverage(L.Callback):
    def on_train_end(self, trainer, pl_module):
        torch.save(ema.average, f"{out}/ema_rank{trainer.global_rank}.pt")


L.seed_everything(0)
trainer = L.Trainer(
    accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, limit_train_batches=4, limit_val_batches=2,
    logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
    callbacks=[ema, MixupCutmix(), SaveAverage(), ModelCheckpoint(dirpath=f"{out}/ckpt", save_last=True)],
)
trainer.fit(ImageClassifier("speedrun_net_tiny"), CIFAR10DataModule(variant="mini", batch_size=16, num_workers=0))
torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
def test_ddp_with_ema_and_mixup_keeps_ranks_identical_and_saves_once(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "ema_rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "ema_rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch=0-step=4.ckpt", "last.ckpt"]
    checkpoint = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert all(torch.equal(checkpoint["state_dict"][f"backbone.{name}"], value) for name, value in rank0.items())
    assert checkpoint["callbacks"]["EMA"]["num_updates"] == 4
