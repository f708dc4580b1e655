"""The figures against scikit-learn and hand computations, the bootstrap's coverage, temperature scaling, McNemar."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, roc_auc_score

from zoo.evaluation.calibration import fit_temperature
from zoo.evaluation.classification import bootstrap_draws, evaluate_classifier
from zoo.evaluation.compare import compare_predictions
from zoo.evaluation.weighted import weighted_metrics


def _problem(
    n: int = 600, classes: int = 5, seed: int = 0, sharpness: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, classes, (n,), generator=generator)
    logits = torch.randn(n, classes, generator=generator) * sharpness
    logits[torch.arange(n), targets] += 1.5
    return logits, targets


def _ece_by_hand(probs: np.ndarray, targets: np.ndarray, bins: int = 15) -> float:
    confidence = np.minimum(probs.max(1), 1 - 1e-6)
    correct = probs.argmax(1) == targets
    total = 0.0
    for k in range(bins):
        inside = (confidence > k / bins) & (confidence <= (k + 1) / bins)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def test_every_figure_matches_an_independent_computation() -> None:
    logits, targets = _problem()
    logits[0] = torch.tensor([40.0, 0, 0, 0, 0])  # a confidence of exactly 1.0 in float32
    report = evaluate_classifier(logits, targets, resamples=10)
    probs, y = logits.double().softmax(1).numpy(), targets.numpy()
    predicted = probs.argmax(1)
    m = {name: interval.value for name, interval in report.metrics.items()}
    assert m["acc1"] == pytest.approx((predicted == y).mean(), abs=1e-6)
    assert m["f1_macro"] == pytest.approx(f1_score(y, predicted, average="macro"), abs=1e-6)
    assert m["f1_weighted"] == pytest.approx(f1_score(y, predicted, average="weighted"), abs=1e-6)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"), abs=1e-5)
    ap = np.mean([average_precision_score(y == c, probs[:, c]) for c in range(5)])
    assert m["average_precision"] == pytest.approx(ap, abs=1e-5)
    assert m["ece"] == pytest.approx(_ece_by_hand(probs, y), abs=1e-5)
    assert m["brier"] == pytest.approx(((probs - np.eye(5)[y]) ** 2).sum(1).mean(), abs=1e-6)
    assert m["nll"] == pytest.approx(-np.log(probs[np.arange(len(y)), y]).mean(), abs=1e-6)
    assert report.confusion == confusion_matrix(y, predicted).tolist()
    per_class_f1 = f1_score(y, predicted, average=None)
    assert [row["f1"]["value"] for row in report.per_class] == pytest.approx(per_class_f1.tolist(), abs=1e-5)

    losses = torch.nn.functional.cross_entropy(logits.double(), targets, reduction="none")
    unit = weighted_metrics(logits.double().softmax(1), targets, torch.ones(1, len(y)), losses)  # the bootstrap's
    for name in ("acc1", "f1_macro", "f1_weighted", "auroc", "average_precision", "ece", "brier", "nll"):
        assert float(unit[name][0]) == pytest.approx(m[name], abs=1e-5), name


def test_bootstrap_intervals_cover_the_true_accuracy_at_about_the_stated_rate() -> None:
    """200 simulated test sets of 300 examples, each right with probability 0.8: the 95% interval should hold
    0.8 in about 95% of them (the percentile bootstrap runs a little under at this size; tolerance +-5 points,
    over 3 standard errors of the coverage estimate)."""
    covered = 0
    generator = torch.Generator().manual_seed(1)
    for repetition in range(200):
        targets = torch.randint(0, 3, (300,), generator=generator)
        right = torch.rand(300, generator=generator) < 0.8
        predicted = torch.where(right, targets, (targets + 1) % 3)
        probs = torch.nn.functional.one_hot(predicted, 3).double() * 0.8 + 0.2 / 3
        accuracy = bootstrap_draws(probs, targets, resamples=400, seed=repetition)["acc1"]
        low, high = torch.quantile(accuracy, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
        covered += low <= 0.8 <= high
    assert 0.90 <= covered / 200 <= 0.99


def test_temperature_scaling_lowers_ece_of_an_overconfident_model_and_keeps_accuracy() -> None:
    generator = torch.Generator().manual_seed(2)
    honest = torch.randn(4000, 6, generator=generator) * 1.5
    targets = torch.multinomial(honest.softmax(1), 1, generator=generator).squeeze(1)  # labels drawn from the model
    overconfident = honest * 3
    temperature = fit_temperature(overconfident[:2000], targets[:2000])
    assert temperature == pytest.approx(3.0, rel=0.15)
    before = evaluate_classifier(overconfident[2000:], targets[2000:], resamples=10).metrics
    after = evaluate_classifier(overconfident[2000:] / temperature, targets[2000:], resamples=10).metrics
    assert after["ece"].value < before["ece"].value / 3
    assert after["acc1"].value == before["acc1"].value


def test_mcnemar_and_the_paired_bootstrap_on_constructed_predictions() -> None:
    targets = torch.zeros(100, dtype=torch.long)
    right_a = torch.zeros(100, dtype=torch.bool)
    right_b = torch.zeros(100, dtype=torch.bool)
    right_a[:55], right_b[:55] = True, True  # both right on 55
    right_a[55:60] = True  # only A on 5
    right_b[60:85] = True  # only B on 25
    logits_a = torch.stack([right_a.double(), (~right_a).double()], 1)
    logits_b = torch.stack([right_b.double(), (~right_b).double()], 1)
    result = compare_predictions("A", logits_a, "B", logits_b, targets)
    exact = 2 * sum(math.comb(30, k) for k in range(6)) / 2**30  # two-sided binomial, 5 of 30 discordant
    assert result.p_value == pytest.approx(exact, rel=1e-9)
    assert (result.only_a_right, result.only_b_right) == (5, 25)
    assert result.difference.value == pytest.approx(0.20) and 0 < result.difference.low < 0.2 < result.difference.high
    assert result.verdict.startswith("B is better than A by 20.00 points, 95% CI [")
    same = compare_predictions("A", logits_a, "A again", logits_a.clone(), targets)
    assert same.p_value == 1.0 and same.verdict.startswith("no significant difference")
