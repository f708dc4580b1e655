"""Optimisation helpers the tasks share: weight-decay parameter groups and LR schedules stepped per step."""

from zoo.optim.param_groups import build_optimizer, param_groups_layer_decay, param_groups_weight_decay
from zoo.optim.schedulers import WarmupCosineLR, build_lr_scheduler

__all__ = [
    "WarmupCosineLR",
    "build_lr_scheduler",
    "build_optimizer",
    "param_groups_layer_decay",
    "param_groups_weight_decay",
]
