"""PyG loaders inside Lightning DDP: node and graph classification with two CPU processes."""

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
from zoo.data import MotifGraphsDataModule, PlanetoidDataModule
from zoo.tasks import GraphClassifier, NodeClassifier

out, kind = sys.argv[1], sys.argv[2]
if kind == "node":
    data = PlanetoidDataModule(name="Cora", loader=sys.argv[3])
    task = NodeClassifier("graphsage", in_channels=data.in_channels, num_classes=data.num_classes)
else:
    data = MotifGraphsDataModule(num_graphs=120, batch_size=16)
    task = GraphClassifier("gin", in_channels=1, num_classes=3)


class Seen(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        key = batch.n_id[: batch.batch_size] if hasattr(batch, "n_id") else batch.y
        torch.save(key, f"{out}/seen_rank{trainer.global_rank}_{batch_idx}.pt")


L.seed_everything(0)
trainer = L.Trainer(
    accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, logger=False, enable_progress_bar=False,
    enable_model_summary=False, callbacks=[ModelCheckpoint(dirpath=f"{out}/ckpt", save_last=True), Seen()],
)
trainer.fit(task, data)
result = trainer.validate(task, data, verbose=False)[0]
if trainer.is_global_zero:
    torch.save(result, f"{out}/result.pt")
torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["node-full", "node-neighbor", "graph"])
def test_two_process_ddp(kind: str, tmp_path: Path, shared_data: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    args = ["node", kind.split("-")[1]] if kind.startswith("node") else ["graph"]
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path), *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir())[-1] == "last.ckpt"
    assert len(list((tmp_path / "ckpt").iterdir())) == 2  # one best and last, written once
    assert torch.isfinite(torch.tensor(torch.load(tmp_path / "result.pt")["val/loss"]))
    if kind == "node-neighbor":  # each rank trains on its own half of the seed nodes
        rank0 = torch.cat([torch.load(p) for p in tmp_path.glob("seen_rank0_*.pt")])
        rank1 = torch.cat([torch.load(p) for p in tmp_path.glob("seen_rank1_*.pt")])
        assert not set(rank0.tolist()) & set(rank1.tolist())
