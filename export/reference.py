"""The drift reference an artifact carries: its inputs' features and its confidence on the validation split.

``zoo serve`` compares what it is asked with this reference (see :mod:`export.serve.drift`). It is recorded at
export from the run's own validation data, prepared as the task prepares it, so that a served image decoded
from a JPEG and a validation image give features on one scale.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from export.serve.drift import input_features, reference_from_samples
from zoo.errors import ZooError

__all__ = ["drift_reference"]

log = logging.getLogger(__name__)


def drift_reference(loaded: Any, spec: Any, samples: int = 1024, data: Any = None) -> dict[str, Any] | None:
    """Input features and top-class confidence of about ``samples`` validation inputs, as decile bins (or ``None``).

    Only classifiers of images or texts have one. A run whose data cannot be read here (no recorded recipe,
    data missing on this machine) gets none, with a logged reason: drift monitoring is then off for it.

    Args:
        loaded: The checkpoint (:class:`zoo.checkpoints.LoadedCheckpoint`).
        spec: Its export spec; ``spec.module`` gives the logits.
        samples: About how many validation inputs to read (whole batches: at least this many when the split has
            them). A thousand place decile edges to about a percentile.
        data: The data module (default: the recipe's the checkpoint recorded).
    """
    pre = spec.signature.preprocessing
    if samples < 1 or spec.signature.raw_input not in ("image", "text"):  # the image and text classifiers
        return None
    from export.calibration import capture_calibration_inputs
    from zoo.evaluation.predictions import build_data

    try:
        data = build_data(None, loaded, []) if data is None else data
        batch_size = int(getattr(data, "eval_batch_size", None) or getattr(data, "batch_size", None) or 64)
        inputs = capture_calibration_inputs(loaded.task, data, math.ceil(samples / batch_size), split="val")
    except (ZooError, OSError) as err:
        log.warning("no drift reference for %s: its validation data cannot be read here (%s)", loaded.path, err)
        return None
    temperature = float((loaded.metadata.calibration or {}).get("temperature", 1.0))
    recorded: dict[str, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for batch in inputs:
            features = input_features(pre, batch)
            logits = spec.module(*batch)
            logits = logits[0] if isinstance(logits, tuple | list) else logits
            features["confidence"] = (logits.float() / temperature).softmax(dim=-1).amax(dim=-1)
            for name, values in features.items():
                recorded.setdefault(name, []).append(values)
    joined = {name: torch.cat(values) for name, values in recorded.items()}
    count = len(joined["confidence"])
    return reference_from_samples(joined, f"val split of {type(data).__name__}: {len(inputs)} batches, {count} inputs")
