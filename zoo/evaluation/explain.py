"""``zoo explain``: why a classifier chose its class, as an attribution overlay or per-token scores (Captum).

Four methods for images: Integrated Gradients (Sundararajan et al., 2017: gradients averaged along the path
from a baseline, here the all-zero normalised image, i.e. the data's mean colour), saliency (the gradient's
magnitude), Grad-CAM (Selvaraju et al., 2017: the last convolution's activations weighted by their gradients)
and, for vision transformers, attention rollout (Abnar & Zuidema, 2020). Texts get Integrated Gradients on the
token embeddings. Integrated Gradients' attributions should sum to the change of the class score from the
baseline; Captum reports how far they are off (the convergence delta), and ``zoo explain`` refuses a result
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

__all__ = [
    "METHODS",
    "Explanation",
    "TextExplanation",
    "attention_rollout",
    "explain_image",
    "explain_text",
    "run_explain_command",
    "write_overlay",
    "write_text_explanation",
]

METHODS = ("integrated_gradients", "saliency", "gradcam", "attention_rollout")


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


def _converged(delta: torch.Tensor, change: float, steps: int, max_delta: float) -> tuple[float, float]:
    """Integrated Gradients' convergence delta, absolute and as a share of the score change; refused if too large.

    Raises:
        UsageError: When the share exceeds ``max_delta``, naming the change, the delta and the steps.
    """
    missed = float(delta.abs().max())
    relative = missed / max(abs(change), 1e-12)
    if relative > max_delta:
        raise UsageError(
            f"Integrated Gradients did not converge: its attributions miss the score change ({change:.4f}) by "
            f"{missed:.4f} ({100 * relative:.1f}% > {100 * max_delta:.0f}%); raise --steps (now {steps})"
        )
    return missed, relative


def _last_conv(module: nn.Module) -> nn.Module:
    convolutions = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convolutions:
        raise UsageError(
            "gradcam needs a convolutional layer and this model has none (a vision transformer?); use "
            "--method integrated_gradients or saliency"
        )
    return convolutions[-1]


def attention_rollout(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) of a timm vision transformer: ``(H, W)`` relevance.

    Each block's attention, averaged over heads and mixed half-and-half with the identity (the residual path),
    is multiplied through the blocks; the class token's row over the patch tokens, as a grid, is upsampled to
    the image. The attention is read from timm's unfused path (its ``attn_drop`` input), switched on for the call.

    Raises:
        UsageError: When the model has no timm attention layers.
    """
    from timm.models.vision_transformer import Attention

    layers = [m for m in model.modules() if isinstance(m, Attention)]
    if not layers:
        raise UsageError("attention_rollout needs a vision transformer (timm attention layers); use another --method")
    maps: list[torch.Tensor] = []
    fused = [layer.fused_attn for layer in layers]
    hooks = [layer.attn_drop.register_forward_hook(lambda _m, _i, out: maps.append(out.detach())) for layer in layers]
    try:
        for layer in layers:
            layer.fused_attn = False
        with torch.inference_mode():
            model(image)
    finally:
        for layer, was in zip(layers, fused, strict=True):
            layer.fused_attn = was
        for hook in hooks:
            hook.remove()
    tokens = maps[0].shape[-1]
    rollout = torch.eye(tokens, device=image.device)
    for attention in maps:
        mixed = 0.5 * attention[0].mean(0) + 0.5 * torch.eye(tokens, device=image.device)
        rollout = (mixed / mixed.sum(-1, keepdim=True)) @ rollout
    prefix = getattr(model, "num_prefix_tokens", 1)
    relevance = rollout[0, prefix:]
    side = round(relevance.numel() ** 0.5)
    grid = relevance.reshape(1, 1, side, side)
    return torch.nn.functional.interpolate(grid, size=tuple(image.shape[-2:]), mode="bilinear")[0, 0]


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
            delta, relative = _converged(delta_t, change, steps, max_delta)
            heat = attribution.sum(1)[0]
        elif method == "attention_rollout":
            heat = attention_rollout(model, image)
        elif method == "saliency":
            heat = attr.Saliency(model).attribute(image, target=target, abs=True).amax(1)[0]
        else:
            layer = attr.LayerGradCam(model, _last_conv(model))
            cam = layer.attribute(image, target=target, relu_attributions=True)
            heat = attr.LayerAttribution.interpolate(cam, tuple(image.shape[-2:]), "bilinear")[0, 0]
    names = labels or [str(i) for i in range(probs.numel())]
    top = [(names[int(i)], float(probs[i])) for i in probs.argsort(descending=True)[:top_k]]
    return Explanation(method, target, heat.detach().float().cpu(), top, delta, relative)


@dataclass(frozen=True)
class TextExplanation:
    """Per-token attributions ``(L,)`` of one text and class, with the tokens and the convergence delta."""

    target: int
    tokens: list[str]
    attribution: torch.Tensor
    top: list[tuple[str, float]]
    delta: float
    relative_delta: float


def _token_embedding(model: nn.Module, vocab_size: int | None) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.Embedding) and (vocab_size is None or module.num_embeddings >= vocab_size):
            return module
    raise UsageError("this text classifier has no token embedding layer to attribute to")


def explain_text(
    task: Any, text: str, target: int | None = None, steps: int = 64, max_delta: float = 0.05, top_k: int = 5
) -> TextExplanation:
    """Attribute a text classifier's class score to the tokens of ``text`` (Integrated Gradients on the embeddings).

    The baseline replaces every token by the padding token, keeping the attention mask; a token's attribution is
    its embedding's attributions summed. The same convergence check as for images applies.

    Raises:
        UsageError: When the convergence delta exceeds ``max_delta`` of the score change.
    """
    from zoo.data.facts import tokenizer_from_spec
    from zoo.data.text_classification import encode_texts

    attr = _captum()
    signature = task.inference_signature()
    tokenizer = tokenizer_from_spec(signature.preprocessing.tokenizer)
    ids, mask = encode_texts(tokenizer, [text], signature.preprocessing.max_length)
    pad = next((tokenizer.token_to_id(t) for t in ("[PAD]", "<pad>") if tokenizer.token_to_id(t) is not None), 0)
    model = task.inference_module().eval()
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    baseline = torch.full_like(ids, pad)
    with torch.inference_mode(False), torch.enable_grad():
        probs = model(ids, mask).softmax(-1)[0].detach()
        target = int(probs.argmax()) if target is None else target
        layer = attr.LayerIntegratedGradients(model, _token_embedding(model, getattr(task, "vocab_size", None)))
        attribution, delta_t = layer.attribute(
            ids, baselines=baseline, additional_forward_args=(mask,), target=target, n_steps=steps,
            return_convergence_delta=True,
        )  # fmt: skip
        change = float(model(ids, mask)[0, target] - model(baseline, mask)[0, target])
    delta, relative = _converged(delta_t, change, steps, max_delta)
    labels = list(signature.labels) if signature.labels else [str(i) for i in range(probs.numel())]
    top = [(labels[int(i)], float(probs[i])) for i in probs.argsort(descending=True)[:top_k]]
    tokens = [tokenizer.id_to_token(int(i)) for i in ids[0]]
    return TextExplanation(target, tokens, attribution.sum(-1)[0].detach().float().cpu(), top, delta, relative)


def write_text_explanation(text: str, explanation: TextExplanation, out: Path, name: str) -> tuple[Path, Path]:
    """The tokens coloured by their attribution (red for the class, blue against) as HTML, and a JSON record."""
    import html

    scale = float(explanation.attribution.abs().max()) or 1.0
    spans = []
    for token, score in zip(explanation.tokens, explanation.attribution.tolist(), strict=True):
        alpha = min(abs(score) / scale, 1.0)
        colour = f"rgba(220, 40, 40, {alpha:.2f})" if score >= 0 else f"rgba(40, 90, 220, {alpha:.2f})"
        spans.append(f'<span title="{score:+.4f}" style="background:{colour};padding:2px">{html.escape(token)}</span>')
    label = explanation.top[0][0] if explanation.top[0][0] else explanation.target
    out.mkdir(parents=True, exist_ok=True)
    page = out / f"{name}.html"
    page.write_text(
        f"<html><body><p>class <b>{html.escape(str(label))}</b> "
        f"({100 * explanation.top[0][1]:.1f}%); red: for it, blue: against</p><p>{' '.join(spans)}</p></body></html>\n"
    )
    record = out / f"{name}.json"
    record.write_text(json.dumps({
        "text": text, "target": explanation.target, "tokens": explanation.tokens,
        "attributions": [round(v, 6) for v in explanation.attribution.tolist()],
        "top": [{"label": label, "probability": round(p, 6)} for label, p in explanation.top],
        "convergence_delta": explanation.delta, "relative_delta": explanation.relative_delta,
    }, indent=2) + "\n")  # fmt: skip
    return page, record


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
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--input", type=Path, nargs="+", help="image file(s), for an image classifier")
    given.add_argument("--text", nargs="+", help="text(s), for a text classifier (Integrated Gradients per token)")
    given.add_argument("--node", type=int, nargs="+", help="node index(es), for a node classifier (PyG's explain)")
    parser.add_argument("--algorithm", default="integrated_gradients", choices=("integrated_gradients", "gnnexplainer"),
                        help="for --node: Captum's Integrated Gradients or GNNExplainer")  # fmt: skip
    parser.add_argument("--config", type=Path, default=None, help="for --node: the recipe (default: the recorded one)")
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
    from zoo.tasks.classification import TextClassifier

    if args.node is not None:
        _explain_nodes(args, loaded)
        return
    if args.text is not None:
        if not isinstance(loaded.task, TextClassifier):
            raise UsageError(f"--text explains text classifiers; {args.ckpt_path} holds a {type(loaded.task).__name__}")
        for index, text in enumerate(args.text):
            explanation = explain_text(loaded.task, text, args.target, args.steps, args.max_delta)
            page, _ = write_text_explanation(text, explanation, args.out, f"text{index}")
            strongest = sorted(zip(explanation.attribution.tolist(), explanation.tokens, strict=True), reverse=True)[:3]
            top = ", ".join(f"{label} {100 * p:.1f}%" for label, p in explanation.top[:3])
            print(
                f"{text!r}: {top}; strongest tokens " + ", ".join(f"{t} {v:+.3f}" for v, t in strongest) + f" -> {page}"
            )
        return
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


def _explain_nodes(args: Any, loaded: Any) -> None:
    from zoo.evaluation.explain_graph import explain_node, write_node_explanation
    from zoo.evaluation.predictions import build_data
    from zoo.tasks.graph import NodeClassifier

    if not isinstance(loaded.task, NodeClassifier):
        raise UsageError(f"--node explains node classifiers; {args.ckpt_path} holds a {type(loaded.task).__name__}")
    data = build_data(args.config, loaded, [])
    data.prepare_data()
    data.setup("test")
    graph = next(iter(data.test_dataloader()))
    for node in args.node:
        result = explain_node(loaded.task, graph, node, args.algorithm)
        picture, _ = write_node_explanation(result, args.out)
        top = ", ".join(f"{label} {100 * p:.1f}%" for label, p in result["probabilities"][:3])
        print(f"node {node} (true {result['true']}): {top}; {len(result['edges'])} edges kept -> {picture}")
