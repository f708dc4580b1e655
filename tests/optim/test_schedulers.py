from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from zoo.optim import WarmupCosineLR, build_lr_scheduler


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _lrs(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    values = []
    for _ in range(steps):
        values.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return values


def test_warmup_then_cosine_matches_closed_form() -> None:
    scheduler = WarmupCosineLR(_optimizer(0.5), total_steps=10, warmup_steps=4, min_lr_ratio=0.1)
    expected = [0.5 * (t + 1) / 4 for t in range(4)]
    expected += [0.5 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1, (t - 4) / 6)))) for t in range(4, 12)]
    assert _lrs(scheduler, 12) == pytest.approx(expected)
    assert expected[-1] == pytest.approx(0.05)  # stays at the floor after total_steps


def test_fractional_warmup_and_resume_from_state_dict() -> None:
    first = WarmupCosineLR(_optimizer(), total_steps=20, warmup_steps=0.25)
    assert first.warmup_steps == 5
    _lrs(first, 7)
    resumed = WarmupCosineLR(_optimizer(), total_steps=20, warmup_steps=0.25)
    resumed.load_state_dict(first.state_dict())
    resumed.optimizer.param_groups[0]["lr"] = first.optimizer.param_groups[0]["lr"]
    assert _lrs(resumed, 5) == pytest.approx(_lrs(first, 5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"total_steps": None}, "needs a finite total_steps"),
        ({"total_steps": 10, "warmup_steps": -1}, "warmup_steps must be >= 0"),
        ({"total_steps": 10, "min_lr_ratio": 2.0}, "min_lr_ratio"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WarmupCosineLR(_optimizer(), **kwargs)


def test_warmup_longer_than_the_run_is_shortened_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="warmup_steps=11 exceeds total_steps=10"):
        scheduler = WarmupCosineLR(_optimizer(), total_steps=10, warmup_steps=11)
    assert scheduler.warmup_steps == 10


def test_total_steps_is_supplied_only_when_left_unset() -> None:
    assert build_lr_scheduler(WarmupCosineLR, _optimizer(), 50).total_steps == 50
    assert build_lr_scheduler(partial(WarmupCosineLR, warmup_steps=5), _optimizer(), 50).total_steps == 50
    assert build_lr_scheduler(partial(WarmupCosineLR, total_steps=None), _optimizer(), 50).total_steps == 50
    assert build_lr_scheduler(partial(WarmupCosineLR, total_steps=7), _optimizer(), 50).total_steps == 7
    one_cycle = build_lr_scheduler(
        partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1.0, total_steps=None), _optimizer(), 30
    )
    assert one_cycle.total_steps == 30
    step = build_lr_scheduler(partial(torch.optim.lr_scheduler.StepLR, step_size=3), _optimizer(), 30)
    assert step.step_size == 3
