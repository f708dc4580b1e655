"""The hand-written PyTorch training loop that the speed benchmarks set beside zoo's.

It takes the pieces a recipe resolves to (the network, the data module, the optimizer settings, precision,
memory format, compilation, clipping, EMA) from a ``ZooLightningCLI(run=False)``, and trains them the way a
user would write it without Lightning: forward, loss, backward, optional clipping, step, a warm-up-cosine
learning rate, and ``torch.optim.swa_utils.AveragedModel`` for the EMA, with the recipe's decay and decay
warm-up (a fixed decay of 0.999 from the first step would average in the untrained weights for most of a short
run, which is not what the recipe trains; a user copying the recipe copies its warm-up too). Batches come from
the data module's own loader and transfer hooks, so both sides of a comparison see the same data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel

__all__ = ["KINDS", "PlainLoop", "synchronize"]

KINDS = ("image", "lm", "diffusion", "node")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that host clocks measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PlainLoop:
    """Train a recipe's network in a plain loop.

    Args:
        cli: A ``ZooLightningCLI(run=False)`` built from the recipe; only its resolved pieces are used.
        kind: The loss a user would write: ``"image"`` (cross-entropy with the task's label smoothing), ``"lm"``
            (next-token cross-entropy), ``"diffusion"`` (noise-prediction MSE at uniform timesteps) or
            ``"node"`` (cross-entropy on the training nodes of a full graph).
        total_steps: Length of the warm-up-cosine schedule (5% warm-up).

    Raises:
        ValueError: For an unknown kind, or a precision other than 32-true and bf16-mixed.
    """

    def __init__(self, cli: Any, kind: str, total_steps: int) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown loop kind {kind!r}; expected one of {KINDS}")
        self.task, self.data, trainer = cli.model, cli.datamodule, cli.trainer
        self.kind = kind
        self.device = trainer.strategy.root_device
        precision = str(trainer.precision)
        if precision not in ("32-true", "32", "bf16-mixed"):
            raise ValueError(f"the plain loop runs 32-true or bf16-mixed, not {precision}")
        self.bf16 = precision == "bf16-mixed"
        self.model = self.task.backbone.to(self.device).train()
        self.channels_last = bool(getattr(self.task, "channels_last", False))
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if getattr(self.task, "compile_backbone", False):
            self.model.compile()
        self.data.prepare_data()
        self.data.setup("fit")
        self.optimizer = _optimizer(cli.config["model"]["init_args"]["optimizer"], self.model)
        schedule = _warmup_cosine(max(1, total_steps // 20), total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        ema = next((cb for cb in trainer.callbacks if type(cb).__name__ == "EMA"), None)
        self.ema_updates = 0  # counted here: AveragedModel's own counter lives on the device (reading it syncs)
        self.ema = (
            None
            if ema is None
            else AveragedModel(
                self.model, multi_avg_fn=_ema_with_warmup(ema, lambda: self.ema_updates), use_buffers=True
            )
        )
        self.clip = trainer.gradient_clip_val

    def epoch(self) -> Iterator[Any]:
        """One epoch of training batches, moved to the device through the data module's hooks."""
        for batch in self.data.train_dataloader():
            # Identity for most modules; gather-and-augment for images kept on the device.
            yield self.data.on_after_batch_transfer(self.data.transfer_batch_to_device(batch, self.device, 0), 0)

    def batches(self) -> Iterator[Any]:
        """Training batches without end, epoch after epoch."""
        while True:
            yield from self.epoch()

    def step(self, batch: Any) -> int | torch.Tensor:
        """One optimizer step on ``batch``; returns its training samples (a device tensor for a graph)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self._loss(batch)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
            self.ema_updates += 1
        return self.task.count_samples(batch)

    def evaluation_model(self) -> nn.Module:
        """The network to evaluate: the EMA average when the recipe keeps one."""
        return self.ema.module if self.ema is not None else self.model

    def _loss(self, batch: Any) -> torch.Tensor:
        if self.kind == "node":
            mask = batch.train_mask
            return F.cross_entropy(self.model(batch.x, batch.edge_index)[mask].float(), batch.y[mask])
        inputs = batch[0]
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        if self.kind == "image":
            smoothing = float(self.task.hparams.get("label_smoothing") or 0.0)
            return F.cross_entropy(self.model(inputs).float(), batch[1], label_smoothing=smoothing)
        if self.kind == "lm":
            return F.cross_entropy(self.model(inputs).flatten(0, 1).float(), batch[1].flatten())
        schedule = self.task.noise_scheduler  # diffusers' DDPMScheduler, as a hand-written DDPM loop would use
        noise = torch.randn_like(inputs)
        timesteps = torch.randint(0, schedule.config.num_train_timesteps, (len(inputs),), device=inputs.device)
        return F.mse_loss(self.model(schedule.add_noise(inputs, noise, timesteps), timesteps).float(), noise)


def _optimizer(config: Any, model: nn.Module) -> torch.optim.Optimizer:
    module, _, name = config["class_path"].rpartition(".")
    return getattr(import_module(module), name)(model.parameters(), **dict(config.get("init_args") or {}))


def _ema_with_warmup(ema: Any, updates: Callable[[], int]) -> Any:
    """``AveragedModel``'s in-place update with the decay schedule of zoo's ``EMA`` callback ``ema``.

    ``updates()`` is how many updates came before this one (``AveragedModel``'s first call copies, and calls this
    for each dtype group of the later ones).
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1 - ema.decay_at(updates()))
        else:  # integer buffers (batch-norm counters) are taken as they are
            torch._foreach_copy_(averaged, current)

    return update


def _warmup_cosine(warmup: int, total: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return factor
