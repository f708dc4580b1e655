"""The leaderboard's per-recipe t-interval and its mark against the suite's best recipe."""

from __future__ import annotations

import pytest

from zoo.leaderboard.show import compare_to_best, t_interval


def test_the_t_interval_of_three_seeds() -> None:
    low, high = t_interval([0.80, 0.82, 0.81])  # mean 0.81, sd 0.01, t(0.975, 2) = 4.3027
    assert (low, high) == pytest.approx((0.81 - 4.3027 * 0.01 / 3**0.5, 0.81 + 4.3027 * 0.01 / 3**0.5), abs=1e-5)
    assert t_interval([0.8]) is None


def test_recipes_are_marked_against_the_best_of_their_metric_and_budget() -> None:
    def row(values: list[float], metric: str = "test/acc1", budget: str = "cpu") -> dict[str, object]:
        return {"metric": metric, "budget": budget, "values": values, "mean": sum(values) / len(values)}

    best, close, far, alone = row([0.83, 0.84, 0.82]), row([0.82, 0.835, 0.83]), row([0.70, 0.71, 0.69]), row([0.5])
    gpu = row([0.90, 0.91], budget="h100")
    loss_best, loss_worse = row([1.0, 1.1], "val/loss"), row([2.0, 2.1], "val/loss")
    compare_to_best([best, close, far, alone, gpu, loss_best, loss_worse])
    assert best["vs_best"] == "best" and gpu["vs_best"] == "best"  # budgets are compared apart
    assert str(close["vs_best"]).startswith("not significant (p=")
    assert str(far["vs_best"]).startswith("worse (p=") and alone["vs_best"] == "-"
    assert loss_best["vs_best"] == "best" and str(loss_worse["vs_best"]).startswith("worse")  # lower is better
