"""Small statistics shared by the leaderboard, the evaluation and weight cards.

The Student-t interval of a mean, and which way a metric improves.
"""

from __future__ import annotations

import statistics

__all__ = ["lower_is_better", "t_interval"]

# Words that mark a metric whose smaller values are better (losses, errors, distances, calibration gaps).
_LOWER_IS_BETTER_WORDS = ("loss", "error", "fid", "perplexity", "bits_per", "nll", "ece", "mce", "brier")


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of ``metric`` (``"val/loss"``, ``"test/fid_zoo_classifier"``, ``"ece"``) are better."""
    return any(word in metric for word in _LOWER_IS_BETTER_WORDS)


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """The ``level`` Student-t interval of the mean of ``values`` (``None`` for fewer than two)."""
    if len(values) < 2:
        return None
    from scipy import stats

    mean, error = statistics.mean(values), statistics.stdev(values) / len(values) ** 0.5
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1)) * error
    return (mean - half, mean + half)
