"""A training step of zoo's defaults reads nothing back from the device, on the path an accelerator takes.

Every read of a device value (``.item()``, ``bool(t)``, ``torch.unique``, boolean-mask indexing) makes the host
wait for the queued work, and the device then idles while the host prepares the next step: 3 to 5 ms per step
on an H200 (``benchmarks/results/side_by_side_h200.jsonl``). The reads are counted on a CPU, where they cost
nothing and are not visible in timings: aten ops that need a device value on the host, seen by a
``TorchDispatchMode``, and the tensor methods that turn a value into a Python one (which a CPU tensor answers
without an aten op), wrapped for the count. The choices zoo makes for an accelerator are switched on:
the non-finite guard reading its verdict one step late and the task checking its labels on the first batch of an
epoch only.
"""

from __future__ import annotations

import sys
from collections import Counter
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader, TensorDataset

from zoo.callbacks import EMA, StopOnNonFiniteLoss, ThroughputMonitor
from zoo.callbacks.guards import _Verdict
from zoo.tasks import ImageClassifier
from zoo.tasks.base import ZooTask

READS = {"_local_scalar_dense", "nonzero", "_unique2", "unique_dim", "_unique", "unique_consecutive", "equal"}
# The guard reads the previous step's verdict from host memory (on CUDA, a pinned copy made without blocking).
HOST_COPY_READER = _Verdict.host_values.__code__
METHODS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


class HostReads(TorchDispatchMode):
    """Counts the aten ops and tensor methods that read device values back to the host."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self._methods: dict[str, object] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in READS:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self) -> HostReads:
        for name in METHODS:
            self._methods[name] = original = getattr(torch.Tensor, name)
            setattr(torch.Tensor, name, self._counted(name, original))
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for name, original in self._methods.items():
            setattr(torch.Tensor, name, original)

    def _counted(self, name: str, original):
        def method(tensor, *args, **kwargs):
            if sys._getframe(1).f_code is not HOST_COPY_READER:
                self.counts[f"Tensor.{name}"] += 1
            return original(tensor, *args, **kwargs)

        return method


class CountReadsAfterFirstBatch(L.Callback):
    """Counts reads from the start to the end of every batch but the first (hooks and optimizer step included).

    Once-per-epoch work (Lightning turning the epoch's logged values into numbers) is outside the window.
    """

    def __init__(self) -> None:
        self.mode = HostReads()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx > 0:
            self.mode.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx > 0:
            self.mode.__exit__(None, None, None)


def test_training_steps_after_the_first_read_nothing_back(
    trainer_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ZooTask, "check_now", lambda self, values, batch_idx: batch_idx == 0)  # the accelerator path
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(48, 3, 32, 32, generator=generator), torch.randint(0, 10, (48,), generator=generator)
    counter = CountReadsAfterFirstBatch()
    trainer = trainer_factory(
        max_steps=6,
        log_every_n_steps=50,
        logger=CSVLogger(tmp_path),
        callbacks=[
            StopOnNonFiniteLoss(defer=True),
            EMA(decay=0.99),
            ThroughputMonitor(),
            LearningRateMonitor(),
            counter,
        ],
    )
    # foreach=True: the optimizer kernels a CUDA device runs by default; the CPU's per-tensor loop reads values
    task = ImageClassifier("speedrun_net_tiny", optimizer=partial(torch.optim.SGD, lr=0.1, momentum=0.9, foreach=True))
    trainer.fit(task, DataLoader(TensorDataset(images, labels), batch_size=8))
    assert trainer.global_step == 6
    assert counter.mode.counts == Counter(), f"reads of device values in steps 1-5: {dict(counter.mode.counts)}"
