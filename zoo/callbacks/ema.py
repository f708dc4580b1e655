"""Exponential moving average (EMA) of a task's weights."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from typing_extensions import override

from zoo.errors import ConfigError, UsageError

__all__ = ["EMA"]

# Strategies that shard parameters across processes; the EMA below keeps whole tensors and would pair
# each rank's shard with the wrong slice.
_SHARDED_STRATEGIES = (FSDPStrategy, DeepSpeedStrategy, ModelParallelStrategy)


class EMA(L.Callback):
    """Keep an exponential moving average of the backbone's weights and evaluate with it.

    After every ``update_every_n_steps``-th optimizer step, each floating-point parameter and buffer
    ``w`` of ``task.backbone`` (the whole task when it has no ``backbone``) updates its average::

        ema = decay_t * ema + (1 - decay_t) * w,    decay_t = min(decay, 1 - (1 + t / gamma) ** -power)

    where ``t`` counts the updates so far. The warm-up (timm's ``ModelEmaV3`` schedule) makes the first update
    a copy and lets the average follow the fast early changes; without it ``decay_t = decay``. Integer
    buffers such as BatchNorm's ``num_batches_tracked`` are copied, and BatchNorm running statistics are
    averaged like the weights, so the averaged network is consistent without re-estimating them.

    Validation, test and predict run with the averaged weights (``evaluate_with_ema``), swapped in for the
    loop and out after it, so the monitored metric and the best checkpoint are those of the EMA weights.
    Checkpoints follow Lightning's weight-averaging layout: ``state_dict`` holds the averaged weights, so
    ``load_from_checkpoint``, ``zoo test --ckpt_path`` and export use them by default, and
    ``current_model_state`` holds the trained weights, from which training resumes. The update counter is
    part of the callback state.

    Under DDP every rank applies the same update to the same synchronised weights, so the averages stay
    identical without communication. Sharded strategies (FSDP, DeepSpeed, model parallel) are refused.

    Why not Lightning's ``EMAWeightAveraging``: it has no decay warm-up, swaps the average in for
    validation only (not test or predict), overwrites the trained weights with the average when training
    ends, keeps a deep copy of the whole LightningModule and pairs tensors by position, and under FSDP only
    warns before pairing flattened shards with full tensors.

    Args:
        decay: Decay of the average, in (0, 1); closer to 1 averages over more steps (about ``1 / (1 - decay)``).
        warmup: Use the warm-up schedule above.
        warmup_gamma: ``gamma`` of the warm-up.
        warmup_power: ``power`` of the warm-up; 3/4 suits runs of up to a few hundred thousand steps, 2/3 longer.
        update_every_n_steps: Update after every n-th optimizer step.
        start_step: First optimizer step (0-based) after which the average is updated.
        evaluate_with_ema: Evaluate with the averaged weights; ``False`` evaluates the trained ones.

    Raises:
        ValueError: For a decay outside (0, 1) or a non-positive update interval.
    """

    def __init__(
        self,
        decay: float = 0.9998,
        warmup: bool = True,
        warmup_gamma: float = 1.0,
        warmup_power: float = 0.75,
        update_every_n_steps: int = 1,
        start_step: int = 0,
        evaluate_with_ema: bool = True,
    ) -> None:
        if not 0 < decay < 1:
            raise ConfigError(f"EMA decay must be in (0, 1), got {decay}")
        if update_every_n_steps < 1:
            raise ConfigError(f"EMA update_every_n_steps must be >= 1, got {update_every_n_steps}")
        if warmup_gamma <= 0 or warmup_power <= 0:
            raise ConfigError(f"EMA warm-up needs gamma > 0 and power > 0, got {warmup_gamma} and {warmup_power}")
        self.decay = decay
        self.warmup = warmup
        self.warmup_gamma = warmup_gamma
        self.warmup_power = warmup_power
        self.update_every_n_steps = update_every_n_steps
        self.start_step = start_step
        self.evaluate_with_ema = evaluate_with_ema
        self.num_updates = 0
        self._last_update_step = -1
        self._average: dict[str, torch.Tensor] | None = None
        self._swapped = False

    def decay_at(self, num_updates: int) -> float:
        """The decay used for the update that follows ``num_updates`` earlier updates."""
        if not self.warmup:
            return self.decay
        return min(self.decay, 1 - (1 + num_updates / self.warmup_gamma) ** -self.warmup_power)

    @property
    def average(self) -> dict[str, torch.Tensor] | None:
        """The averaged tensors by backbone state-dict name, or ``None`` before training starts."""
        return self._average

    def copy_to(self, module: nn.Module) -> None:
        """Load the averaged weights into ``module`` (the backbone, or a copy of it)."""
        if self._average is None:
            raise UsageError("EMA has no average yet: it is created when training starts")
        module.load_state_dict(self._average, strict=False)

    # Lightning hooks -----------------------------------------------------------------------------------

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if isinstance(trainer.strategy, _SHARDED_STRATEGIES):
            strategy = type(trainer.strategy).__name__
            raise UsageError(
                f"EMA does not support {strategy}: it keeps whole tensors on every rank and pairs them with the "
                "module's parameters, which this strategy shards across ranks, so the average would mix unrelated "
                "slices. Train with DDP, or remove the EMA callback."
            )

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._average is None:
            self._average = {name: t.detach().clone() for name, t in _target(pl_module).state_dict().items()}
        self._place(pl_module)

    def _place(self, pl_module: L.LightningModule) -> None:
        """Move a restored average to the module's device (checkpoints are restored before the move)."""
        assert self._average is not None
        state = _target(pl_module).state_dict()
        for name, tensor in self._average.items():
            if tensor.device != state[name].device:
                self._average[name] = tensor.to(state[name].device)

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step - 1  # index of the optimizer step just taken
        if step == self._last_update_step or step < self.start_step:
            return
        if (step - self.start_step) % self.update_every_n_steps == 0:
            self._update(_target(pl_module))
            self._last_update_step = step

    @torch.no_grad()
    def _update(self, module: nn.Module) -> None:
        assert self._average is not None
        weight = 1 - self.decay_at(self.num_updates)
        averaged, current = [], []
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                averaged.append(self._average[name])
                current.append(tensor)
            else:
                self._average[name].copy_(tensor)
        if averaged:
            torch._foreach_lerp_(averaged, current, weight)
        self.num_updates += 1

    @override
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap_in(pl_module)

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap_out(pl_module)

    @override
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap_in(pl_module)

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap_out(pl_module)

    @override
    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap_in(pl_module)

    @override
    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swap_out(pl_module)

    def _swap_in(self, pl_module: L.LightningModule) -> None:
        if self.evaluate_with_ema and self._average is not None and not self._swapped:
            self._place(pl_module)
            self._swap(pl_module)

    def _swap_out(self, pl_module: L.LightningModule) -> None:
        if self._swapped:
            self._swap(pl_module)

    @torch.no_grad()
    def _swap(self, pl_module: L.LightningModule) -> None:
        assert self._average is not None
        for name, tensor in _target(pl_module).state_dict().items():
            stored = self._average[name]
            held = tensor.clone()
            tensor.copy_(stored)
            stored.copy_(held)
        self._swapped = not self._swapped

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"num_updates": self.num_updates, "last_update_step": self._last_update_step}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.num_updates = state_dict["num_updates"]
        self._last_update_step = state_dict["last_update_step"]

    @override
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._average is None:
            return
        prefix = _prefix(pl_module)
        module_state = checkpoint["state_dict"]
        averaged = {f"{prefix}{name}": tensor.detach().clone() for name, tensor in self._average.items()}
        if self._swapped:  # saved mid-evaluation: the module holds the average, the store the trained weights
            module_state, averaged = {**module_state, **averaged}, {k: module_state[k] for k in averaged}
        checkpoint["current_model_state"] = module_state
        checkpoint["state_dict"] = {**module_state, **averaged}

    @override
    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        trained = checkpoint.get("current_model_state")
        if trained is None:
            rank_zero_warn("The checkpoint has no EMA state; the average restarts from the loaded weights.")
            return
        prefix = _prefix(pl_module)
        self._average = {
            name[len(prefix) :]: tensor.detach().clone()
            for name, tensor in checkpoint["state_dict"].items()
            if name.startswith(prefix)
        }
        pl_module.load_state_dict(trained)  # the module continues from (or evaluates) the trained weights
        self._swapped = False


def _target(pl_module: L.LightningModule) -> nn.Module:
    return pl_module.backbone if isinstance(getattr(pl_module, "backbone", None), nn.Module) else pl_module


def _prefix(pl_module: L.LightningModule) -> str:
    return "backbone." if _target(pl_module) is not pl_module else ""
