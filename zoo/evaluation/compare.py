"""Is model B really better than model A? Both on the same test examples, paired.

Two tests of the same question, as the ML-evaluation literature recommends for one test set (Dietterich 1998):
McNemar's exact test on the examples exactly one of the models gets right (a two-sided binomial test of those
discordant pairs at 1/2), and a paired bootstrap interval of the accuracy difference (the same resampled
examples for both models).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo.errors import UsageError
from zoo.evaluation.classification import Interval

__all__ = ["Comparison", "compare_predictions"]


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare_predictions` (accuracies and the difference as fractions)."""

    a: str
    b: str
    examples: int
    accuracy_a: float
    accuracy_b: float
    difference: Interval  # accuracy of B minus accuracy of A
    only_a_right: int
    only_b_right: int
    p_value: float
    level: float

    @property
    def verdict(self) -> str:
        """One sentence: which is better, by how much, with the interval and the p-value."""
        d = self.difference
        interval = f"{self.level:.0%} CI [{100 * d.low:.2f}, {100 * d.high:.2f}]"
        p = f"p = {self.p_value:.3g} (McNemar's exact test, {self.only_a_right + self.only_b_right} discordant)"
        if self.p_value < 1 - self.level and d.value != 0:
            better, worse = (self.b, self.a) if d.value > 0 else (self.a, self.b)
            return f"{better} is better than {worse} by {100 * abs(d.value):.2f} points, {interval}, {p}"
        return f"no significant difference: {self.b} - {self.a} = {100 * d.value:+.2f} points, {interval}, {p}"

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``compare.json``."""
        return {
            "a": self.a, "b": self.b, "examples": self.examples, "accuracy_a": self.accuracy_a,
            "accuracy_b": self.accuracy_b, "difference": self.difference.as_dict(), "only_a_right": self.only_a_right,
            "only_b_right": self.only_b_right, "p_value": self.p_value, "level": self.level, "verdict": self.verdict,
        }  # fmt: skip


def compare_predictions(
    a: str, logits_a: torch.Tensor, b: str, logits_b: torch.Tensor, targets: torch.Tensor,
    resamples: int = 1000, seed: int = 0, level: float = 0.95,
) -> Comparison:  # fmt: skip
    """Compare two classifiers' logits ``(N, C)`` on the same ``targets`` ``(N,)``.

    Raises:
        UsageError: When the two did not score the same number of examples or classes.
    """
    from scipy.stats import binomtest

    if logits_a.shape != logits_b.shape or logits_a.shape[0] != targets.shape[0]:
        raise UsageError(
            f"{a} and {b} must score the same examples and classes: got {tuple(logits_a.shape)} and "
            f"{tuple(logits_b.shape)} for {targets.shape[0]} targets"
        )
    right_a = (logits_a.argmax(1) == targets).double()
    right_b = (logits_b.argmax(1) == targets).double()
    only_a, only_b = int(((right_a == 1) & (right_b == 0)).sum()), int(((right_a == 0) & (right_b == 1)).sum())
    discordant = only_a + only_b
    p_value = 1.0 if discordant == 0 else float(binomtest(min(only_a, only_b), discordant, 0.5).pvalue)
    n = targets.shape[0]
    generator = torch.Generator().manual_seed(seed)
    gaps = []
    for start in range(0, resamples, 200):
        picks = torch.randint(0, n, (min(200, resamples - start), n), generator=generator)
        gaps.append((right_b[picks] - right_a[picks]).mean(1))
    draws = torch.cat(gaps)
    tail = (1 - level) / 2
    low, high = torch.quantile(draws, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    gap = float(right_b.mean() - right_a.mean())
    return Comparison(a, b, n, float(right_a.mean()), float(right_b.mean()), Interval(gap, low, high), only_a, only_b,
                      p_value, level)  # fmt: skip
