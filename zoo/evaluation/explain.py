"""``zoo explain``: why an image classifier chose its class, as an attribution overlay (Captum).

Three of Captum's methods: Integrated Gradients (Sundararajan et al., 2017: gradients averaged along the path
from a baseline, here the all-zero normalised image, i.e. the data's mean colour), saliency (the gradient's
magnitude) and Grad-CAM (Selvaraju et al., 2017: the last convolution's activations weighted by their
gradients). Integrated Gradients' attributions should sum to the change of the class score from the baseline
to the image; Captum reports how far they are off (the convergence delta), and ``zoo explain`` refuses a result
whose delta exceeds ``max_delta`` of that change rather than draw a misleading map: more ``steps`` fix it.

Gradients need autograd, which Lightning's inference mode turns off; the explanation runs with it on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.errors import MissingExtraError, UsageError

__all__ = ["METHODS", "Explanation", "explain_image", "run_explain_command", "write_overlay"]

METHODS = ("integrated_gradients", "saliency", "gradcam")


@dataclass(frozen=True)
class Explanation:
    """An attribution map ``(H, W)`` for one input and class, with what the method reports about itself."""

    method: str
    target: int
    attribution: torch.Tensor
    top: list[tuple[str, float]]
    delta: float | None = None
    relative_delta: float | None = None


def _captum() -> Any:
    try:
        import captum.attr
    except ImportError as err:
        raise MissingExtraError("zoo explain needs Captum: pip install 'lightning-zoo[explain]'") from err
    return captum.attr


def _last_conv(module: nn.Module) -> nn.Module:
    convolutions = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convolutions:
        raise UsageError(
            "gradcam needs a convolutional layer and this model has none (a vision transformer?); use "
            "--method integrated_gradients or saliency"
        )
    return convolutions[-1]


def explain_image(
    task: Any, image: torch.Tensor, method: str = "integrated_gradients", target: int | None = None,
    steps: int = 64, max_delta: float = 0.05, labels: list[str] | None = None, top_k: int = 5,
) -> Explanation:  # fmt: skip
    """Attribute ``task``'s class score for one normalised ``image`` ``(1, C, H, W)`` to its pixels.

    Args:
        task: An image classifier (its inference module is explained).
        image: ``(1, C, H, W)``, normalised as the model takes it.
        method: One of :data:`METHODS`.
        target: The class to explain (default: the predicted one).
        steps: Integrated Gradients' path steps.
        max_delta: The largest convergence delta allowed, as a share of the score's change from the baseline.
        labels: Class names, for the top classes.
        top_k: How many top classes to report.

    Raises:
        UsageError: For an unknown method, Grad-CAM on a model without convolutions, or an Integrated
            Gradients result whose convergence delta is too large.
    """
    attr = _captum()
    if method not in METHODS:
        raise UsageError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    model = task.inference_module().eval()
    device = next(model.parameters()).device
    image = image.to(device)
    with torch.inference_mode(False), torch.enable_grad():
        image = image.clone().requires_grad_(True)
        probs = model(image).softmax(-1)[0].detach()
        target = int(probs.argmax()) if target is None else target
        delta = relative = None
        if method == "integrated_gradients":
            baseline = torch.zeros_like(image)
            attribution, delta_t = attr.IntegratedGradients(model).attribute(
                image, baselines=baseline, target=target, n_steps=steps, return_convergence_delta=True
            )
            change = float(model(image)[0, target] - model(baseline)[0, target])
            delta = float(delta_t.abs().max())
            relative = delta / max(abs(change), 1e-12)
            if relative > max_delta:
                raise UsageError(
                    f"Integrated Gradients did not converge: its attributions miss the score change ({change:.4f}) by "
                    f"{delta:.4f} ({100 * relative:.1f}% > {100 * max_delta:.0f}%); raise --steps (now {steps})"
                )
            heat = attribution.sum(1)[0]
        elif method == "saliency":
            heat = attr.Saliency(model).attribute(image, target=target, abs=True).amax(1)[0]
        else:
            layer = attr.LayerGradCam(model, _last_conv(model))
            cam = layer.attribute(image, target=target, relu_attributions=True)
            heat = attr.LayerAttribution.interpolate(cam, tuple(image.shape[-2:]), "bilinear")[0, 0]
    names = labels or [str(i) for i in range(probs.numel())]
    top = [(names[int(i)], float(probs[i])) for i in probs.argsort(descending=True)[:top_k]]
    return Explanation(method, target, heat.detach().float().cpu(), top, delta, relative)


def write_overlay(source: Path, explanation: Explanation, out: Path) -> tuple[Path, Path]:
    """The input with the attribution overlaid (at the input's own size) as a PNG, and the figures as JSON."""
    import matplotlib
    import numpy as np
    from PIL import Image

    heat = explanation.attribution
    if explanation.method == "integrated_gradients":
        heat = heat.clamp_min(0)  # the evidence for the class
    heat = heat / heat.max() if float(heat.max()) > 0 else heat
    with Image.open(source) as opened:
        picture = opened.convert("RGB")
    resized = torch.nn.functional.interpolate(heat[None, None], size=picture.size[::-1], mode="bilinear")[0, 0]
    colours = matplotlib.colormaps["inferno"](resized.clamp(0, 1).numpy())[..., :3]
    blended = 0.55 * np.asarray(picture, dtype=np.float32) / 255 + 0.45 * colours
    out.mkdir(parents=True, exist_ok=True)
    image_path = out / f"{source.stem}.{explanation.method}.png"
    Image.fromarray((blended.clip(0, 1) * 255).astype(np.uint8)).save(image_path)
    record = {
        "input": str(source), "method": explanation.method, "target": explanation.target,
        "top": [{"label": label, "probability": round(p, 6)} for label, p in explanation.top],
        "convergence_delta": explanation.delta, "relative_delta": explanation.relative_delta,
    }  # fmt: skip
    json_path = out / f"{source.stem}.{explanation.method}.json"
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    return image_path, json_path


def run_explain_command(argv: list[str]) -> None:
    """``zoo explain --ckpt_path C --input cat.png [...] [--method ...] [--out DIR]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="zoo explain",
        description="Explain an image classifier's decision: an attribution overlay per input (Captum's "
        "Integrated Gradients, saliency or Grad-CAM) and its top classes.",
    )
    parser.add_argument("--ckpt_path", type=Path, required=True)
    parser.add_argument("--input", type=Path, nargs="+", required=True, help="image file(s)")
    parser.add_argument("--method", default="integrated_gradients", choices=METHODS)
    parser.add_argument("--target", type=int, default=None, help="class index to explain (default: the predicted)")
    parser.add_argument("--steps", type=int, default=64, help="Integrated Gradients' path steps")
    parser.add_argument("--max_delta", type=float, default=0.05, help="largest convergence delta, share of the change")
    parser.add_argument("--out", type=Path, default=Path("explanations"))
    parser.add_argument("--weights", default="ema", choices=("ema", "trained"))
    args = parser.parse_args(argv)
    from zoo.checkpoints import load_checkpoint
    from zoo.data.vision import preprocess_images
    from zoo.errors import MissingFileError
    from zoo.tasks.classification import ImageClassifier

    loaded = load_checkpoint(args.ckpt_path, weights=args.weights)
    if not isinstance(loaded.task, ImageClassifier):
        raise UsageError(f"zoo explain draws attributions for image classifiers; {args.ckpt_path} holds a "
                         f"{type(loaded.task).__name__}")  # fmt: skip
    signature = loaded.task.inference_signature()
    labels = list(signature.labels) if signature.labels else None
    for source in args.input:
        if not source.is_file():
            raise MissingFileError(f"--input {source} does not exist")
        image = preprocess_images(signature.preprocessing, [source], strict_channels=True)
        explanation = explain_image(loaded.task, image, args.method, args.target, args.steps, args.max_delta, labels)
        picture, _ = write_overlay(source, explanation, args.out)
        top = ", ".join(f"{label} {100 * p:.1f}%" for label, p in explanation.top[:3])
        delta = "" if explanation.delta is None else f"; convergence delta {explanation.delta:.2e}"
        print(f"{source}: {top}{delta} -> {picture}")
