"""The front door of ``POST /predict``: every request body checked and put in one shape before it is queued.

A request is parsed in the HTTP process, before it reaches the inference worker, so a bad one is answered at
once with its own status and reason and never fails a batch that other callers share. What comes out is a
small JSON payload the worker trusts:

- image classifiers: ``{"images": [base64, ...], "top_k": k}`` from an image file (raw bytes or multipart) or
  JSON (``{"images": [...]}``, ``{"image": ...}`` or a bare list of base64 strings);
- text classifiers: ``{"texts": [...], "top_k": k}`` from ``{"text": str | [str, ...]}`` (or ``"texts"``);
- language models: ``{"prompt", "max_new_tokens", "temperature", "top_k", "seed", "stream"}``;
- graph models: ``{"x": [[...]], "edge_index": [[...], [...]], "top_k": k}``;
- diffusion models: ``{"num_images", "seed", "steps", "class_label", "sampler"}``.

Statuses: 400 for what cannot be read (JSON, base64, image bytes, wrong types), 413 for a body over the limit,
415 for a content type the model does not take, 422 for readable input outside a limit (pixels, tokens, items,
``max_new_tokens``).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Limits", "RequestError", "parse_request"]

IMAGE_TYPES = ("image/", "application/octet-stream")


class RequestError(Exception):
    """A request the server answers with ``status`` and ``reason`` (as ``{"error": reason}``)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes:
        max_body_bytes: Largest request body (413 above it).
        max_items: Most images or texts in one request (422 above it).
        max_pixels: Largest image, width times height, before it is decoded (422 above it).
        max_new_tokens: Most tokens a language model generates for one request (422 above it).
        max_nodes: Most nodes in one graph (422 above it).
        max_images: Most images a diffusion model generates for one request (422 above it).
    """

    max_body_bytes: int = 8 * 2**20
    max_items: int = 64
    max_pixels: int = 4096 * 4096
    max_new_tokens: int = 1024
    max_nodes: int = 100_000
    max_images: int = 16


@dataclass(frozen=True)
class ModelFacts:
    """What the front door needs to know of the served model (read from its inference signature).

    Attributes:
        kind: The raw input: ``"image"``, ``"text"``, ``"tokens"``, ``"graph"`` or ``"noise"`` (diffusion).
        num_classes: Output classes of a classifier (bounds ``top_k``) or of a conditional diffusion model.
        max_tokens: The longest text (tokens, special ones included) or prompt the model takes, else ``None``.
        in_channels: Node feature width of a graph model, else ``None``.
        tokenizer: The model's tokenizer, for counting tokens, else ``None``.
        max_steps: A diffusion model's training timesteps (the most sampling steps), else ``None``.
        conditional: Whether a diffusion model takes class labels.
        labels: Class names, when the model has them (a diffusion request may name its class).
    """

    kind: str
    num_classes: int | None = None
    max_tokens: int | None = None
    in_channels: int | None = None
    tokenizer: Any = None
    max_steps: int | None = None
    conditional: bool = False
    labels: tuple[str, ...] | None = None


def parse_request(content_type: str, body: bytes, facts: ModelFacts, limits: Limits) -> dict[str, Any]:
    """Check a ``/predict`` body and return the worker's payload (see the module docstring).

    Args:
        content_type: The request's ``Content-Type`` header (parameters such as ``charset`` allowed).
        body: The whole body, already bounded by ``limits.max_body_bytes``.
        facts: The served model.
        limits: The limits per request.

    Raises:
        RequestError: With the status and a reason that names the field, the value and the limit.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if facts.kind == "image" and media.startswith(IMAGE_TYPES):
        return _images({"images": [body]}, facts, limits, raw=True)
    if media != "application/json":
        takes = "application/json" + (", image/* or multipart/form-data" if facts.kind == "image" else "")
        raise RequestError(415, f"Content-Type {media or '(none)'} is not accepted; this model takes {takes}")
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(400, f"the body is not valid JSON: {err}") from None
    if facts.kind == "image":
        return _images(request, facts, limits)
    if facts.kind == "text":
        return _texts(request, facts, limits)
    if facts.kind == "tokens":
        return _generation(request, facts, limits)
    if facts.kind == "graph":
        return _graph(request, facts, limits)
    if facts.kind == "noise":
        return _diffusion(request, facts, limits)
    raise RequestError(501, f"serving {facts.kind} models is not supported")


def image_payload(files: Sequence[bytes], facts: ModelFacts, limits: Limits, top_k: Any = None) -> dict[str, Any]:
    """The payload for image files uploaded as multipart form fields."""
    return _images({"images": list(files), **({} if top_k is None else {"top_k": top_k})}, facts, limits, raw=True)


def _fields(request: Any, allowed: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(request, Mapping):
        raise RequestError(400, f"expected a JSON object with {what}, got {type(request).__name__}")
    unknown = sorted(set(request) - set(allowed))
    if unknown:
        raise RequestError(400, f"unknown field(s) {unknown}; this model takes {list(allowed)}")
    return request


def _top_k(request: Mapping[str, Any], facts: ModelFacts) -> int:
    value = request.get("top_k", 5)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RequestError(422, f"top_k must be a positive integer, got {value!r}")
    return min(value, facts.num_classes or value)


def _items(request: Mapping[str, Any], many: str, one: str, limits: Limits) -> list[Any]:
    if many in request and one in request:
        raise RequestError(400, f"give either {many!r} or {one!r}, not both")
    items = request.get(many, request.get(one))
    if items is None:
        raise RequestError(400, f"missing field {many!r} (a list) or {one!r}")
    if not isinstance(items, list):
        items = [items]
    if not items:
        raise RequestError(422, f"{many!r} is empty; give at least one")
    if len(items) > limits.max_items:
        raise RequestError(422, f"{len(items)} {many} in one request; the limit is {limits.max_items}")
    return items


def _images(request: Any, facts: ModelFacts, limits: Limits, raw: bool = False) -> dict[str, Any]:
    if isinstance(request, list):
        request = {"images": request}
    request = _fields(request, ("images", "image", "top_k"), "'images' (base64 strings)")
    encoded = []
    for index, item in enumerate(_items(request, "images", "image", limits)):
        name = f"images[{index}]"
        if raw:
            data, text = item, base64.b64encode(item).decode("ascii")
        elif not isinstance(item, str):
            raise RequestError(400, f"{name} must be a base64 string, got {type(item).__name__}")
        else:
            text = item.split(",", 1)[-1] if item.startswith("data:") else item
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise RequestError(400, f"{name} is not valid base64") from None
        check_image(data, name, limits)
        encoded.append(text)
    return {"images": encoded, "top_k": _top_k(request, facts)}


def check_image(data: bytes, name: str, limits: Limits) -> None:
    """Read ``data``'s header: refuse what is no image, or too large, before it is queued.

    Only the header is read: decoding here would run on the HTTP process's event loop (a 16-megapixel JPEG
    holds every other request for a tenth of a second) and again in the worker. An image whose pixel data is
    broken fails to decode in the worker, where it is answered alone with 400.

    Raises:
        RequestError: 400 when it is not an image PIL can identify, 422 above ``limits.max_pixels``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > limits.max_pixels:
                raise RequestError(
                    422, f"{name} is {width}x{height} = {width * height:,} pixels; the limit is {limits.max_pixels:,}"
                )
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise RequestError(400, f"{name} is not an image that can be read: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise RequestError(400, f"{name} could not be decoded: {err}") from None


def _texts(request: Any, facts: ModelFacts, limits: Limits) -> dict[str, Any]:
    request = _fields(request, ("text", "texts", "top_k"), "'text' (a string or a list of strings)")
    texts = _items(request, "texts", "text", limits)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(400, f"texts[{index}] must be a string, got {type(text).__name__}")
        count = token_count(facts.tokenizer, text)
        if facts.max_tokens is not None and count > facts.max_tokens:
            raise RequestError(
                422, f"texts[{index}] is {count} tokens long; this model takes at most {facts.max_tokens}"
            )
    return {"texts": texts, "top_k": _top_k(request, facts)}


def token_count(tokenizer: Any, text: str) -> int:
    """Tokens of ``text`` (special tokens included for a Hugging Face tokenizer), without truncation."""
    if tokenizer is None:
        return 0
    if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return len(tokenizer.encode(text).ids)
    return len(tokenizer.encode(text))


_GENERATION = ("prompt", "max_new_tokens", "temperature", "top_k", "seed", "stream")


def _generation(request: Any, facts: ModelFacts, limits: Limits) -> dict[str, Any]:
    request = _fields(request, _GENERATION, "'prompt'")
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise RequestError(400, "'prompt' must be a non-empty string")
    try:
        count = len(facts.tokenizer.encode(prompt))
    except ValueError as err:
        raise RequestError(422, f"the prompt cannot be tokenized: {err}") from None
    if facts.max_tokens is not None and count > facts.max_tokens:
        raise RequestError(422, f"the prompt is {count} tokens long; this model's context is {facts.max_tokens}")
    new = _integer(request, "max_new_tokens", 100, 1, limits.max_new_tokens)
    temperature = request.get("temperature", 0.8)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 100:
        raise RequestError(422, f"temperature must be a number in [0, 100], got {temperature!r}")
    top_k = request.get("top_k", 200)
    if top_k is not None:
        top_k = _integer(request, "top_k", 200, 1, None)
    stream = request.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, f"stream must be true or false, got {stream!r}")
    seed = _integer(request, "seed", 0, 0, 2**63 - 1)
    return {"prompt": prompt, "max_new_tokens": new, "temperature": float(temperature), "top_k": top_k,
            "seed": seed, "stream": stream}  # fmt: skip


def _integer(request: Mapping[str, Any], key: str, default: int, low: int, high: int | None) -> int:
    value = request.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError(422, f"{key} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"from {low} to {high}"
        raise RequestError(422, f"{key} is {value}; it must be {bound}")
    return value


def _graph(request: Any, facts: ModelFacts, limits: Limits) -> dict[str, Any]:
    request = _fields(request, ("x", "edge_index", "top_k"), "'x' (nodes x features) and 'edge_index' (2 x edges)")
    x, edges = request.get("x"), request.get("edge_index")
    if not isinstance(x, list) or not x or not all(isinstance(row, list) for row in x):
        raise RequestError(400, "'x' must be a non-empty list of node feature lists")
    if len(x) > limits.max_nodes:
        raise RequestError(422, f"the graph has {len(x)} nodes; the limit is {limits.max_nodes}")
    width = facts.in_channels
    for index, row in enumerate(x):
        if len(row) != width:
            raise RequestError(422, f"x[{index}] has {len(row)} features; this model takes {width}")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in row):
            raise RequestError(400, f"x[{index}] must hold finite numbers")
    if not isinstance(edges, list) or len(edges) != 2 or not all(isinstance(r, list) for r in edges):
        raise RequestError(400, "'edge_index' must be two lists: sources and targets")
    if len(edges[0]) != len(edges[1]):
        raise RequestError(422, f"edge_index rows differ in length: {len(edges[0])} sources, {len(edges[1])} targets")
    for row in edges:
        for node in row:
            if not isinstance(node, int) or isinstance(node, bool) or not 0 <= node < len(x):
                raise RequestError(422, f"edge_index holds {node!r}; node indices run from 0 to {len(x) - 1}")
    return {"x": x, "edge_index": edges, "top_k": _top_k(request, facts)}


def _diffusion(request: Any, facts: ModelFacts, limits: Limits) -> dict[str, Any]:
    request = _fields(request, ("num_images", "seed", "steps", "class_label", "sampler"), "'num_images'")
    count = _integer(request, "num_images", 1, 1, limits.max_images)
    steps = _integer(request, "steps", min(50, facts.max_steps or 50), 1, facts.max_steps)
    sampler = request.get("sampler", "ddim")
    if sampler not in ("ddpm", "ddim"):
        raise RequestError(422, f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
    label = request.get("class_label")
    if label is not None and not facts.conditional:
        raise RequestError(422, "class_label was given, but this diffusion model is unconditional")
    labels = label if isinstance(label, list) else None if label is None else [label]
    if labels is not None:
        if len(labels) not in (1, count):
            raise RequestError(422, f"{len(labels)} class labels for {count} images; give one, or one per image")
        names = list(facts.labels or ())
        labels = [names.index(v) if isinstance(v, str) and v in names else v for v in labels]
        for value in labels:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (facts.num_classes or 0):
                known = f"0..{(facts.num_classes or 0) - 1}" + (f" or one of {names}" if names else "")
                raise RequestError(422, f"class_label {value!r} is not a class of this model ({known})")
    return {"num_images": count, "seed": _integer(request, "seed", 0, 0, 2**63 - 1), "steps": steps,
            "class_label": labels, "sampler": sampler}  # fmt: skip
