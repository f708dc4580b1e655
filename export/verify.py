"""Check an artifact against eager PyTorch on inputs of other sizes than it was exported with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from export.formats import check_artifact, runner
from export.specs import ExportSpec

__all__ = ["Verification", "verify_artifact"]


@dataclass
class Verification:
    """The outcome for one artifact.

    Attributes:
        passed: Every check input matched eager PyTorch within the spec's tolerances.
        max_abs_error: Largest absolute difference over all check inputs (``None`` when it could not run).
        message: Why it failed (empty when it passed).
    """

    passed: bool
    max_abs_error: float | None
    message: str = ""


@torch.no_grad()
def verify_artifact(fmt: str, path: Path, spec: ExportSpec) -> Verification:
    """Load ``path`` as a deployment would and compare it with ``spec.module`` on every check size.

    A file that cannot be loaded (truncated, tampered with) or that fails the ONNX checker fails verification
    with the reason, rather than raising.
    """
    try:
        check_artifact(path)
        if fmt == "onnx":
            import onnx

            onnx.checker.check_model(str(path), full_check=True)
        run = runner(fmt, path)
    except Exception as err:  # any load failure is a verification failure, reported with its reason
        return Verification(False, None, f"cannot be loaded: {type(err).__name__}: {_first_line(err)}")
    worst = 0.0
    for sizes in spec.check_sizes:
        inputs = spec.make_inputs(sizes)
        with torch.no_grad():
            expected = spec.module(*inputs)
        try:
            got = run(*inputs)
        except Exception as err:
            return Verification(False, None, f"fails on sizes {sizes}: {type(err).__name__}: {_first_line(err)}")
        if got.shape != expected.shape:
            return Verification(False, None, f"sizes {sizes}: output {tuple(got.shape)}, eager {tuple(expected.shape)}")
        error = float((got.float() - expected.float()).abs().max())
        worst = max(worst, error)
        if not torch.allclose(got.float(), expected.float(), rtol=spec.rtol, atol=spec.atol):
            return Verification(
                False, worst, f"sizes {sizes}: max abs error {error:.2e} over rtol {spec.rtol}, atol {spec.atol}"
            )
    return Verification(True, worst)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else ""
