"""Fine-tuning schedule: train the head on a frozen backbone first, then everything at a lower rate."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn
from torch.optim import Optimizer
from typing_extensions import override

from zoo.errors import ConfigError
from zoo.optim import param_groups_weight_decay

__all__ = ["FreezeBackbone"]


class FreezeBackbone(BaseFinetuning):
    """Freeze everything but the classifier for ``unfreeze_at_epoch`` epochs, then train it all.

    The usual recipe for fine-tuning a pretrained network on a new task: a freshly initialised head first
    learns on fixed features, so its large early gradients do not wreck them; then the body is unfrozen at
    ``backbone_lr_ratio`` times the head's rate. Lightning's ``BackboneFinetuning`` freezes the task's whole
    ``backbone``, which in zoo includes the classifier (timm's layout), and gives the unfrozen layers one group
    that decays norm and bias weights; this callback freezes all of ``task.backbone`` except
    ``backbone.get_classifier()`` and unfreezes into a decayed and a non-decayed group.

    With ``zoo.optim.WarmupCosineLR`` the unfrozen groups follow the same schedule as the head (their
    ``initial_lr`` is ``backbone_lr_ratio`` times the head's); other torch schedulers keep them at their
    starting rate. Resuming restores the added groups (Lightning's ``BaseFinetuning`` state).

    Args:
        unfreeze_at_epoch: First epoch (0-based) that trains the whole network; 0 never freezes.
        backbone_lr_ratio: Rate of the unfrozen layers relative to the head's rate at that time.
        train_bn: Keep BatchNorm layers of the frozen body in training mode (updating their statistics).

    Raises:
        ValueError: For a negative epoch or a ratio outside (0, 1]; at setup, for a task whose backbone has no
            ``get_classifier()``.
    """

    def __init__(self, unfreeze_at_epoch: int = 5, backbone_lr_ratio: float = 0.1, train_bn: bool = False) -> None:
        super().__init__()
        if unfreeze_at_epoch < 0:
            raise ConfigError(f"unfreeze_at_epoch must be >= 0, got {unfreeze_at_epoch}")
        if not 0 < backbone_lr_ratio <= 1:
            raise ConfigError(f"backbone_lr_ratio must be in (0, 1], got {backbone_lr_ratio}")
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.backbone_lr_ratio = backbone_lr_ratio
        self.train_bn = train_bn

    @override
    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        if self.unfreeze_at_epoch > 0:
            self.freeze(_body(pl_module), train_bn=self.train_bn)

    @override
    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        if epoch != self.unfreeze_at_epoch or self.unfreeze_at_epoch == 0:
            return
        body = _body(pl_module)
        self.make_trainable(body)
        head = optimizer.param_groups[0]
        lr = head["lr"] * self.backbone_lr_ratio
        initial_lr = head.get("initial_lr", head["lr"]) * self.backbone_lr_ratio
        for group in param_groups_weight_decay(nn.ModuleList(body)):
            optimizer.add_param_group({**group, "lr": lr, "initial_lr": initial_lr})


def _body(pl_module: L.LightningModule) -> list[nn.Module]:
    """The backbone's top-level children other than its classifier."""
    backbone = getattr(pl_module, "backbone", None)
    if not isinstance(backbone, nn.Module) or not hasattr(backbone, "get_classifier"):
        raise ConfigError(
            f"FreezeBackbone needs a task whose backbone offers get_classifier(); {type(pl_module).__name__} "
            "does not have one"
        )
    head = backbone.get_classifier()
    return [child for child in backbone.children() if child is not head]
