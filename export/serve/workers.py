"""The inference side of ``zoo serve``: LitServe APIs that run a model on payloads the front door checked.

Each runs in LitServe's inference worker process. :class:`ClassifierAPI` takes the requests LitServe batched
(up to ``max_batch_size`` within ``batch_timeout``), runs their images or texts through the model in one call,
and hands each caller its own answer; a request that still fails to decode here is answered alone with its
status, the rest of its batch is not affected. :class:`LanguageModelAPI` generates one prompt at a time and can
stream the tokens as they come (NDJSON lines). :class:`GraphAPI` batches graphs as one disjoint union;
:class:`DiffusionAPI` samples each request's images and returns them as PNGs.
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import litserve as ls
import torch
from PIL import Image
from starlette.responses import JSONResponse

from export.serve.drift import DriftMonitor, input_features
from export.serve.metrics import BATCH_SIZE, DRIFT, DRIFT_SCORE
from export.serve.model import describe, load_servable
from export.serve.state import STATE

__all__ = ["ClassifierAPI", "DiffusionAPI", "GraphAPI", "LanguageModelAPI", "Rejected"]


@dataclass(frozen=True)
class Rejected:
    """A request the worker could not take: answered alone with ``status`` and ``reason``."""

    status: int
    reason: str


@dataclass
class Decoded:
    """One request's prepared input: an image batch ``(n, C, S, S)``, or its texts."""

    top_k: int
    images: torch.Tensor | None = None
    texts: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Inputs in the request."""
        return len(self.texts) if self.images is None else len(self.images)


class _ServedAPI(ls.LitAPI):
    """What every zoo API shares: load the model in ``setup``, describe it in each answer, report readiness."""

    def __init__(self, source: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.model: Any = None
        self.about: dict[str, Any] = {}

    def setup(self, device: str) -> None:
        """Load the model (as the main process resolved it) and run one warm-up request before reporting ready."""
        self.model = load_servable(self.source["path"], self.source["runtime"], allow_failed=True, reference_samples=0)
        self.about = describe(self.model)
        self.warm_up()

    def warm_up(self) -> None:
        """Run the model once so that the first caller does not pay for lazy initialisation."""

    def health(self) -> bool:
        """Ready unless the server is draining (read in the HTTP process; see :mod:`export.serve.state`)."""
        return not STATE.draining.is_set()


class _BatchedAPI(_ServedAPI):
    """Classifiers whose requests LitServe batches: :meth:`_run` answers the valid ones in one model call."""

    def batch(self, inputs: list[Any]) -> list[Any]:
        """Keep the requests apart: :meth:`_run` joins their inputs into one call and splits the result."""
        return list(inputs)

    def predict(self, x: Any) -> Any:
        """One request (``max_batch_size`` 1) or a batch of them -> per request its answer, or its rejection."""
        if not isinstance(x, list):
            return self.predict([x])[0]
        BATCH_SIZE.observe(len(x))
        valid = [request for request in x if not isinstance(request, Rejected)]
        answers = iter(self._run(valid, True) if valid else [])
        return [request if isinstance(request, Rejected) else next(answers) for request in x]

    def _run(self, requests: list[Any], observe: bool) -> list[Any]:
        """Per valid request its top-k rows, in order; ``observe`` is false for the warm-up."""
        raise NotImplementedError

    def unbatch(self, output: list[Any]) -> list[Any]:
        """Already one answer per request."""
        return output

    def encode_response(self, output: Any) -> Any:
        """``{"model", "version", "predictions": [[{"label", "probability"}, ...], ...]}``, or the rejection."""
        return classification_response(self.about, output)


class ClassifierAPI(_BatchedAPI):
    """Image and text classifiers: batched, each answer the top-k labels with calibrated probabilities."""

    def setup(self, device: str) -> None:  # noqa: D102 - as _ServedAPI, plus the drift monitor
        super().setup(device)
        reference = self.source.get("drift_reference") or self.model.metadata.get("drift_reference")
        options = self.source.get("drift", {})
        self.drift = DriftMonitor(reference, **options) if reference else None

    def warm_up(self) -> None:  # noqa: D102 - as _ServedAPI
        pre = self.model.signature.preprocessing
        if pre.kind == "image":
            self._run([Decoded(1, images=torch.zeros(1, pre.in_chans, pre.image_size, pre.image_size))], False)
        else:
            self._run([Decoded(1, texts=["warm up"])], False)

    def decode_request(self, request) -> Decoded | Rejected:
        """The checked payload (a dict) -> prepared input (images decoded, resized and normalised here).

        ``request`` has no annotation on purpose: LitServe reads it as the type of the HTTP body.
        """
        try:
            if "images" in request:
                pictures = []
                for item in request["images"]:  # plain base64: the gate took any data-URL prefix off
                    picture = Image.open(io.BytesIO(base64.b64decode(item)))
                    picture.load()  # from memory: nothing left open
                    pictures.append(picture)
                return Decoded(request["top_k"], images=self.model.preprocess_images(pictures))
            return Decoded(request["top_k"], texts=list(request["texts"]))
        except Exception as err:
            return Rejected(400, f"the input could not be prepared: {type(err).__name__}: {err}")

    def _run(self, requests: list[Decoded], observe: bool) -> list[Any]:
        if requests[0].images is not None:
            inputs: tuple[torch.Tensor, ...] = (torch.cat([r.images for r in requests]),)
        else:
            inputs = self.model.preprocess_texts([t for r in requests for t in r.texts])
        probabilities = self.model.probabilities(self.model(*inputs))
        if observe and self.drift is not None:
            features = input_features(self.model.signature.preprocessing, inputs)
            features["confidence"] = probabilities.amax(dim=-1)
            scores = self.drift.update(features)
            for name, score in scores.items():
                DRIFT.labels(feature=name).set(score)
            DRIFT_SCORE.set(max(scores.values(), default=0.0))
        rows = probabilities.split([r.count for r in requests])
        return [self.model.top_labels(mine, r.top_k) for mine, r in zip(rows, requests, strict=True)]


def classification_response(about: dict[str, Any], output: Any) -> Any:
    """Top-k rows as JSON with the model's name and version, or a rejection as its own status."""
    if isinstance(output, Rejected):
        return JSONResponse({"error": output.reason}, status_code=output.status)
    predictions = [[{"label": label, "probability": p} for label, p in row] for row in output]
    return {"model": about["name"], "version": about["version"], "predictions": predictions}


class LanguageModelAPI(_ServedAPI):
    """Language models: one prompt at a time, the continuation whole or streamed token by token."""

    def __init__(self, source: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(source, stream=True, **kwargs)

    def warm_up(self) -> None:  # noqa: D102 - as _ServedAPI
        vocabulary = getattr(self.model.tokenizer, "vocab", None)
        prompt = vocabulary[0] if vocabulary else "a"
        "".join(self.model.stream(prompt, max_new_tokens=1))

    def decode_request(self, request) -> dict[str, Any]:
        """The checked generation parameters."""
        return request

    def predict(self, request: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
        """The text each sampled token adds, with the request it belongs to."""
        BATCH_SIZE.observe(1)
        options = {k: request[k] for k in ("max_new_tokens", "temperature", "top_k", "seed")}
        for piece in self.model.stream(request["prompt"], **options):
            yield request, piece
            if time.time() > request.get("deadline", math.inf):  # answered 504 already; stop spending on it
                return

    def encode_response(self, output: Iterator[tuple[dict[str, Any], str]]) -> Iterator[dict[str, Any]]:
        """Streamed: ``{"token": piece}`` lines, then a last line with the whole text; else only that last line."""
        pieces: list[str] = []
        request: dict[str, Any] = {}
        for request, piece in output:
            pieces.append(piece)
            if request["stream"] and piece:
                yield {"token": piece}
        yield {"model": self.about["name"], "version": self.about["version"], "prompt": request.get("prompt"),
               "completion": "".join(pieces), "tokens": len(pieces)}  # fmt: skip


@dataclass
class Graph:
    """One request's graph: node features ``x (N, F)`` float32 and ``edge_index (2, E)`` int64."""

    top_k: int
    x: torch.Tensor
    edge_index: torch.Tensor


class GraphAPI(_BatchedAPI):
    """Node and graph classifiers: concurrent requests' graphs run as one disjoint union, as PyG batches them.

    Message passing never crosses from one graph of a union to another, so each caller's answer is what its
    graph alone gives: per node for a node classifier, one for the graph for a graph classifier.
    """

    def warm_up(self) -> None:  # noqa: D102 - as _ServedAPI
        width = self.model.signature.preprocessing.in_channels
        self._run([Graph(1, torch.zeros(2, width), torch.tensor([[0, 1], [1, 0]]))], False)

    def decode_request(self, request) -> Graph | Rejected:
        """The checked graph (a dict) -> tensors (no annotation: see ClassifierAPI.decode_request)."""
        try:
            edges = torch.tensor(request["edge_index"], dtype=torch.long).reshape(2, -1)
            return Graph(request["top_k"], torch.tensor(request["x"], dtype=torch.float32), edges)
        except Exception as err:
            return Rejected(400, f"the graph could not be prepared: {type(err).__name__}: {err}")

    def _run(self, graphs: list[Graph], observe: bool) -> list[Any]:
        sizes = [len(g.x) for g in graphs]
        offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0)
        x = torch.cat([g.x for g in graphs])
        edge_index = torch.cat([g.edge_index + offset for g, offset in zip(graphs, offsets, strict=True)], dim=1)
        per_graph = len(self.model.signature.inputs) == 3  # (x, edge_index, batch): a graph classifier
        if per_graph:
            batch = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(sizes)])
            probabilities = self.model.probabilities(self.model(x, edge_index, batch)).split(1)
        else:
            probabilities = self.model.probabilities(self.model(x, edge_index)).split(sizes)
        return [self.model.top_labels(rows, g.top_k) for rows, g in zip(probabilities, graphs, strict=True)]


class DiffusionAPI(_ServedAPI):
    """Diffusion models: each request samples its own images (one request at a time), returned as PNGs."""

    def warm_up(self) -> None:  # noqa: D102 - as _ServedAPI
        conditional = len(self.model.signature.inputs) == 3
        self.model.sample(1, steps=1, class_labels=[0] if conditional else None)

    def decode_request(self, request) -> dict[str, Any]:
        """The checked sampling request (no annotation: see ClassifierAPI.decode_request)."""
        return request

    def predict(self, request: dict[str, Any]) -> dict[str, Any]:
        """Sample the images; PNG-encode them."""
        BATCH_SIZE.observe(1)
        images = self.model.sample(request["num_images"], seed=request["seed"], steps=request["steps"],
                                   sampler=request["sampler"], class_labels=request["class_label"])  # fmt: skip
        pngs = []
        for image in images.mul(255).round().byte().permute(0, 2, 3, 1).numpy():
            out = io.BytesIO()
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(out, "PNG")
            pngs.append(base64.b64encode(out.getvalue()).decode("ascii"))
        return {**{k: request[k] for k in ("seed", "steps", "sampler", "class_label")}, "images": pngs}

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        """``{"model", "version", "images": [base64 PNG, ...], "seed", "steps", "sampler", "class_label"}``."""
        return {"model": self.about["name"], "version": self.about["version"], **output}
