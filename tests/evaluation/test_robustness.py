"""Corruptions (deterministic, shape-keeping, graded by severity) and ``zoo evaluate --corruptions --ood``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from zoo.errors import UsageError
from zoo.evaluation.cli import run_evaluate_command
from zoo.evaluation.corruptions import CORRUPTIONS, corrupt
from zoo.evaluation.robustness import _auroc, _fpr_at_tpr


@pytest.fixture
def images(tmp_path: Path, extract_images) -> torch.Tensor:
    """Sixteen real CIFAR-10 test images, ``(16, 3, 32, 32)`` in ``[0, 1]``."""
    root = extract_images(tmp_path / "tree", per_class=2, splits=("test",))
    files = sorted(root.glob("test/*/*"))[:16]
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_seeded_keeps_shape_and_grows_with_severity(name: str, images: torch.Tensor) -> None:
    def run(severity: int, seed: int = 0) -> torch.Tensor:
        return corrupt(images, name, severity, torch.Generator().manual_seed(seed))

    mild, strong = run(1), run(5)
    assert mild.shape == images.shape and mild.dtype == images.dtype
    assert float(strong.min()) >= 0 and float(strong.max()) <= 1
    assert torch.equal(mild, run(1))  # the same seed, the same corruption
    change = lambda out: float((out - images).abs().mean())  # noqa: E731
    assert 0 < change(mild) < change(strong), (change(mild), change(strong))


def test_ood_statistics_against_scikit_learn() -> None:
    generator = torch.Generator().manual_seed(0)
    inside = torch.randn(300, generator=generator, dtype=torch.float64) + 1.0
    outside = torch.randn(200, generator=generator, dtype=torch.float64)
    outside[:5] = inside[:5]  # ties
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[inside.numpy(), outside.numpy()])
    assert _auroc(inside, outside) == pytest.approx(expected, abs=1e-9)
    threshold = torch.quantile(inside, 0.05)
    assert _fpr_at_tpr(inside, outside, 0.95) == pytest.approx(float((outside >= threshold).double().mean()))


def test_evaluate_measures_corruptions_and_out_of_distribution_images(
    repo: Path, trained_cnn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = str(trained_cnn)
    out = tmp_path / "eval"
    run_evaluate_command(["--ckpt_path", checkpoint, "--out", str(out), "--resamples", "20", "--limit_batches",
                          "2", "--corruptions", "--corruption_types", "gaussian_noise", "contrast", "--severities", "1",
                          "5", "--ood", "noise", "--", "--data.init_args.batch_size", "16"])  # fmt: skip
    result = json.loads((out / "corruptions.json").read_text())
    assert set(result["accuracy"]) == {"gaussian_noise", "contrast"} and result["severities"] == [1, 5]
    assert result["mean_corruption_accuracy"] == pytest.approx(
        np.mean([a for per in result["accuracy"].values() for a in per.values()])
    )
    assert (out / "corruptions.png").read_bytes()[:4] == b"\x89PNG"
    ood = json.loads((out / "ood.json").read_text())
    assert ood["inside"] == ood["outside"] == 64 and 0 <= ood["energy"]["auroc"] <= 1  # 2 test batches of 32
    report = json.loads((out / "report.json").read_text())
    assert report["robustness"]["corruptions"]["clean"] == result["clean"]
    printed = capsys.readouterr().out  # the table: a row per type with its severities, mean and drop
    assert "gaussian_noise" in printed and "accuracy under corruptions by severity" in printed and "drop" in printed
    with pytest.raises(
        UsageError, match=r"the --ood images are \(3, 16, 16\) .* but the test images are \(3, 32, 32\)"
    ):
        run_evaluate_command(["--ckpt_path", checkpoint, "--out", str(out), "--limit_batches", "1",
                              "--ood", str(repo / "recipes/shapes/ddpm_tiny.yaml")])  # fmt: skip
