"""Small statistics shared by the leaderboard and the evaluation: the Student-t interval of a mean."""

from __future__ import annotations

import statistics

__all__ = ["t_interval"]


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """The ``level`` Student-t interval of the mean of ``values`` (``None`` for fewer than two)."""
    if len(values) < 2:
        return None
    from scipy import stats

    mean, error = statistics.mean(values), statistics.stdev(values) / len(values) ** 0.5
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1)) * error
    return (mean - half, mean + half)
