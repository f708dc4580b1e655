"""Magnitude pruning during training, on a schedule from a start to an end sparsity, that resumes exactly."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
from torch import nn
from typing_extensions import override

from zoo.callbacks.ema import EMA
from zoo.checkpoints import PRUNING_KEY
from zoo.errors import ConfigError
from zoo.pruning.masks import (
    apply_masks,
    check_sparsity,
    example_inputs_of,
    mask_sparsity,
    structured_masks,
    unstructured_masks,
)

__all__ = ["Prune"]


class Prune(L.Callback):
    """Prune the backbone's smallest weights step by step, keep them at zero, and record it for export.

    At the start of each pruning epoch (``start_epoch``, then every ``frequency`` epochs up to ``end_epoch``)
    the target sparsity follows the cubic schedule of Zhu and Gupta (2017, "To prune, or not to prune"), the one
    TensorFlow Model Optimization uses::

        s(e) = end + (start - end) * (1 - (e - start_epoch) / (end_epoch - start_epoch)) ** 3

    so most weights go early, while the network can still recover, and few near the end. New masks are computed
    from the current weights (see :mod:`zoo.pruning.masks`): unstructured over all convolution and linear
    weights, or structured over whole output channels, which ``zoo export`` then removes from the network.
    After every optimizer step the pruned weights are set back to zero and their gradients are zeroed before
    it, in the network and in the EMA average when the run keeps one, so momentum cannot regrow them. After
    ``end_epoch`` the masks stay in force: the sparsity is permanent.

    The masks and the last pruning epoch are the callback's state, saved in every checkpoint: a run resumed
    mid-schedule (even mid-epoch) continues with the same masks and prunes next exactly when the uninterrupted
    run would. Because the weights are pruned in place rather than re-parametrised (``weight_orig`` and
    ``weight_mask``, as ``torch.nn.utils.prune`` and Lightning's ``ModelPruning`` do), checkpoints keep the
    network's own keys and load into an unpruned model.

    Args:
        sparsity: Final fraction of weights (unstructured) or of each channel group (structured), in [0, 1).
        method: ``"unstructured"`` or ``"structured"`` (output channels of convolutional networks).
        start_epoch: First epoch that prunes.
        end_epoch: Epoch that reaches ``sparsity`` (default: ``start_epoch``, one-shot pruning).
        start_sparsity: Sparsity of the first pruning epoch when the schedule has several (default 0 for a
            schedule, ``sparsity`` for one shot).
        frequency: Epochs between pruning steps.

    Raises:
        ValueError: For a sparsity outside [0, 1), an unknown method, or an epoch range that runs backwards.
    """

    def __init__(
        self,
        sparsity: float = 0.5,
        method: Literal["unstructured", "structured"] = "unstructured",
        start_epoch: int = 0,
        end_epoch: int | None = None,
        start_sparsity: float | None = None,
        frequency: int = 1,
    ) -> None:
        check_sparsity(sparsity)
        if method not in ("unstructured", "structured"):
            raise ConfigError(f"Prune(method={method!r}): choose unstructured or structured")
        end_epoch = start_epoch if end_epoch is None else end_epoch
        if start_epoch < 0 or end_epoch < start_epoch or frequency < 1:
            raise ConfigError(
                f"Prune needs 0 <= start_epoch <= end_epoch and frequency >= 1, got start_epoch={start_epoch}, "
                f"end_epoch={end_epoch}, frequency={frequency}"
            )
        start_sparsity = (0.0 if end_epoch > start_epoch else sparsity) if start_sparsity is None else start_sparsity
        check_sparsity(start_sparsity)
        self.sparsity = sparsity
        self.method = method
        self.start_epoch = start_epoch
        self.end_epoch = end_epoch
        self.start_sparsity = start_sparsity
        self.frequency = frequency
        self.masks: dict[str, torch.Tensor] = {}
        self._pairs: list[tuple[nn.Parameter, torch.Tensor]] = []  # (parameter, its mask on its device)
        self.pruned_epoch: int | None = None
        self.current_sparsity = 0.0

    def target_at(self, epoch: int) -> float | None:
        """The schedule's sparsity for ``epoch``, or ``None`` when that epoch does not prune."""
        if epoch < self.start_epoch or epoch > self.end_epoch:
            return None
        if epoch != self.end_epoch and (epoch - self.start_epoch) % self.frequency:
            return None
        if self.end_epoch == self.start_epoch:
            return self.sparsity
        progress = (epoch - self.start_epoch) / (self.end_epoch - self.start_epoch)
        return self.sparsity + (self.start_sparsity - self.sparsity) * (1 - progress) ** 3

    # Lightning hooks -----------------------------------------------------------------------------------

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        target = self.target_at(epoch)
        if target is None or self.pruned_epoch == epoch:  # a run resumed mid-epoch pruned at its start already
            return
        backbone = _backbone(pl_module)
        if self.method == "unstructured":
            self.masks = unstructured_masks(backbone, target)
        else:
            self.masks = structured_masks(backbone, target, example_inputs_of(pl_module))
        self.pruned_epoch = epoch
        self._pair(pl_module)
        self._enforce(trainer)
        self.current_sparsity = mask_sparsity(self.masks)
        pl_module.log("prune/sparsity", self.current_sparsity, on_step=False, on_epoch=True)

    @override
    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        for parameter, mask in self._pairs:
            if parameter.grad is not None:
                parameter.grad.mul_(mask)

    @override
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._pairs:
            self._enforce(trainer)

    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.masks:  # restored from a checkpoint, before the module reached its device
            self._pair(pl_module)

    def _pair(self, pl_module: L.LightningModule) -> None:
        """Pair each masked parameter with its mask on the parameter's device, once per new set of masks."""
        parameters = dict(_backbone(pl_module).named_parameters())
        self._pairs = [(parameters[name], mask.to(parameters[name].device)) for name, mask in self.masks.items()]

    @torch.no_grad()
    def _enforce(self, trainer: L.Trainer) -> None:
        for parameter, mask in self._pairs:
            parameter.mul_(mask)
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(callback, EMA) and callback.average is not None:  # the average must be as sparse
                apply_masks(callback.average, self.masks)

    # State ---------------------------------------------------------------------------------------------

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": {name: mask.cpu() for name, mask in self.masks.items()},
            "pruned_epoch": self.pruned_epoch,
            "current_sparsity": self.current_sparsity,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.masks = dict(state_dict["masks"])
        self.pruned_epoch = state_dict["pruned_epoch"]
        self.current_sparsity = state_dict["current_sparsity"]

    @override
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[PRUNING_KEY] = {
            "method": self.method,
            "sparsity": self.current_sparsity,
            "target": self.sparsity,
            "schedule": {"start_epoch": self.start_epoch, "end_epoch": self.end_epoch,
                         "start_sparsity": self.start_sparsity, "frequency": self.frequency},
        }  # fmt: skip


def _backbone(pl_module: L.LightningModule) -> nn.Module:
    backbone = getattr(pl_module, "backbone", None)
    return backbone if isinstance(backbone, nn.Module) else pl_module
