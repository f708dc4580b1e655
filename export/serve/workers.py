"""The inference side of ``zoo serve``: LitServe APIs that run a model on payloads the front door checked.

Each runs in LitServe's inference worker process. :class:`ClassifierAPI` takes the requests LitServe batched
(up to ``max_batch_size`` within ``batch_timeout``), runs their images or texts through the model in one call,
and hands each caller its own answer; a request that still fails to decode here is answered alone with its
status, the rest of its batch is not affected. :class:`LanguageModelAPI` generates one prompt at a time and can
stream the tokens as they come (NDJSON lines).
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

__all__ = ["ClassifierAPI", "LanguageModelAPI", "Rejected"]


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
        from export.serve.model import describe, load_servable

        self.model = load_servable(self.source["path"], self.source["runtime"], allow_failed=True, reference_samples=0)
        self.about = describe(self.model)
        self.warm_up()

    def warm_up(self) -> None:
        """Run the model once so that the first caller does not pay for lazy initialisation."""

    def health(self) -> bool:
        """Ready unless the server is draining (read in the HTTP process; see :mod:`export.serve.server`)."""
        from export.serve.server import STATE

        return not STATE.draining.is_set()


class ClassifierAPI(_ServedAPI):
    """Image and text classifiers: batched, each answer the top-k labels with calibrated probabilities."""

    def setup(self, device: str) -> None:  # noqa: D102 - as _ServedAPI, plus the drift monitor
        super().setup(device)
        from export.serve.drift import DriftMonitor

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
                from PIL import Image

                pictures = []
                for item in request["images"]:
                    data = base64.b64decode(item.split(",", 1)[-1] if item.startswith("data:") else item)
                    with Image.open(io.BytesIO(data)) as opened:
                        opened.load()
                        pictures.append(opened.copy())
                return Decoded(request["top_k"], images=self.model.preprocess_images(pictures))
            return Decoded(request["top_k"], texts=list(request["texts"]))
        except Exception as err:
            return Rejected(400, f"the input could not be prepared: {type(err).__name__}: {err}")

    def batch(self, inputs: list[Decoded | Rejected]) -> list[Decoded | Rejected]:
        """Keep the requests apart: :meth:`predict` joins their inputs into one call and splits the result."""
        return list(inputs)

    def predict(self, x: Any) -> Any:
        """One request (``max_batch_size`` 1) or a batch of them -> per request its answer (or its rejection)."""
        if not isinstance(x, list):
            return self.predict([x])[0]
        return self._run(x, True)

    def _run(self, requests: list[Decoded | Rejected], observe: bool) -> list[Any]:
        from export.serve.drift import input_features
        from export.serve.metrics import BATCH_SIZE, DRIFT, DRIFT_SCORE

        valid = [r for r in requests if isinstance(r, Decoded)]
        if not valid:
            return list(requests)
        if valid[0].images is not None:
            inputs: tuple[torch.Tensor, ...] = (torch.cat([r.images for r in valid]),)
        else:
            inputs = self.model.preprocess_texts([t for r in valid for t in r.texts])
        probabilities = self.model.probabilities(self.model(*inputs))
        if observe:
            BATCH_SIZE.observe(len(requests))
            if self.drift is not None:
                features = input_features(self.model.signature.preprocessing, inputs)
                features["confidence"] = probabilities.amax(dim=-1)
                scores = self.drift.update(features)
                for name, score in scores.items():
                    DRIFT.labels(feature=name).set(score)
                DRIFT_SCORE.set(max(scores.values(), default=0.0))
        answers, start = [], 0
        for request in requests:
            if isinstance(request, Rejected):
                answers.append(request)
                continue
            rows = probabilities[start : start + request.count]
            start += request.count
            answers.append(self.model.top_labels(rows, request.top_k))
        return answers

    def unbatch(self, output: list[Any]) -> list[Any]:
        """Already one answer per request."""
        return output

    def encode_response(self, output: Any) -> Any:
        """``{"model", "version", "predictions": [[{"label", "probability"}, ...], ...]}``, or the rejection."""
        if isinstance(output, Rejected):
            from starlette.responses import JSONResponse

            return JSONResponse({"error": output.reason}, status_code=output.status)
        predictions = [[{"label": label, "probability": p} for label, p in row] for row in output]
        return {"model": self.about["name"], "version": self.about["version"], "predictions": predictions}


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
        from export.serve.metrics import BATCH_SIZE

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
