"""Put a model behind HTTP with LitServe: its batching and worker processes, zoo's gate, probes and metrics.

Processes: this one (loads the model once to learn what it takes, then supervises), LitServe's inference
workers (``--workers``, each loads the model, warms it up, then batches), and LitServe's API servers (uvicorn,
forked from this one, with :class:`export.serve.gate.Gate` in front of the app).

Endpoints: ``POST /predict``; ``GET /health`` (liveness: the process answers), ``GET /ready`` (readiness:
200 once every worker has loaded the model and run its warm-up, 503 before and while draining), ``GET /info``
(model, version, metadata, model card, limits), ``GET /metrics`` (Prometheus text).

Shutdown: on SIGTERM the server drains: ``/ready`` turns 503 and new requests get 503, every request already
accepted is answered, then LitServe stops its API servers and workers; the process exits 0 within
``grace_s``.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.serve.requests import Limits, ModelFacts
from export.serve.state import STATE
from zoo.errors import ConfigError

__all__ = ["ServeOptions", "model_facts", "serve"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    """How ``zoo serve`` runs (each is a command-line option of the same name).

    Attributes:
        host: Interface to listen on (127.0.0.1 by default: reachable from this machine only).
        port: TCP port.
        workers: Inference worker processes, each with its own copy of the model.
        api_servers: HTTP server processes (default: one per worker).
        max_batch_size: Most requests run together (1 turns dynamic batching off).
        batch_timeout_ms: How long a worker waits for more requests after a batch's first. 0 (the default) takes
            what is queued: under load the queue fills while the model runs, so batches form without waiting,
            and a lone request is not held back (on the 2-core CPU, 2.1 ms median at one client instead of 9.6
            ms with 5 ms; ``benchmarks/serve_load.py``). A GPU, where a fuller batch costs little more than a
            small one, gains from a few milliseconds.
        runtime: See :func:`export.serve.model.load_servable`.
        allow_failed: Serve an artifact that failed its quality gate.
        api_key_env: Environment variable holding the bearer key for ``/predict`` and ``/info``.
        grace_s: Seconds to finish accepted requests after SIGTERM.
        timeout_s: Seconds a request may take (504 after).
        max_queue: Requests accepted and unanswered before new ones get 503.
        limits: Per-request limits.
        drift_window: Recent inputs compared with the drift reference.
        drift_threshold: PSI above which drift is logged as a warning.
        log_level: uvicorn's and LitServe's log level.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    api_servers: int | None = None
    max_batch_size: int = 32
    batch_timeout_ms: float = 0.0
    runtime: str | None = None
    allow_failed: bool = False
    api_key_env: str | None = None
    grace_s: float = 30.0
    timeout_s: float = 30.0
    max_queue: int = 256
    limits: Limits = field(default_factory=Limits)
    drift_window: int = 512
    drift_threshold: float = 0.25
    log_level: str = "info"


def model_facts(model: Any) -> ModelFacts:
    """What the gate checks requests against, from the model's inference signature."""
    from zoo.data.facts import tokenizer_from_spec

    signature = model.signature
    pre = signature.preprocessing
    kind = getattr(pre, "kind", None)
    if kind is None:
        raise ConfigError(f"{model.path} records no preprocessing (its run had no data facts): nothing to serve from")
    labels = signature.labels
    num_classes = None if labels is None else len(labels)
    if num_classes is None and signature.outputs and kind in ("image", "text", "graph"):
        num_classes = signature.outputs[0].shape[-1] if isinstance(signature.outputs[0].shape[-1], int) else None
    max_tokens = None
    if kind == "text":
        max_tokens = pre.max_length or signature.inputs[0].max_sizes.get("tokens")
    elif kind == "tokens":
        max_tokens = pre.block_size or None
    tokenizer = tokenizer_from_spec(pre.tokenizer) if kind in ("text", "tokens") else None
    if kind == "noise":
        conditional = len(signature.inputs) == 3
        num_classes = num_classes or (int(model.metadata["hparams"].get("num_classes") or 0) if conditional else None)
        steps = int(pre.noise_schedule["num_train_timesteps"])
        return ModelFacts(kind, num_classes, max_steps=steps, conditional=conditional, labels=labels)
    width = pre.in_channels if kind == "graph" else None
    return ModelFacts(kind, num_classes, max_tokens, width, tokenizer, labels=labels)


def serve(path: str | os.PathLike[str], options: ServeOptions) -> int:
    """Serve ``path`` until SIGTERM (or Ctrl-C); the exit status (0 after a clean drain).

    Raises:
        ValueError: For what cannot be served (see :func:`export.serve.model.load_servable`), an unset API key
            variable, or an unsupported model kind.
    """
    own_directory = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    if own_directory:  # before prometheus-client is imported here or in a process started from here
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="zoo-serve-metrics-")
    try:
        return _serve(path, options)
    finally:
        if own_directory:
            shutil.rmtree(os.environ.pop("PROMETHEUS_MULTIPROC_DIR"), ignore_errors=True)


def _serve(path: str | os.PathLike[str], options: ServeOptions) -> int:
    import litserve as ls

    from export.serve.gate import Gate
    from export.serve.metrics import render
    from export.serve.model import describe, load_servable, runtime_of
    from export.serve.workers import ClassifierAPI, DiffusionAPI, GraphAPI, LanguageModelAPI

    api_key = _api_key(options.api_key_env)
    model = load_servable(path, options.runtime, options.allow_failed)
    facts = model_facts(model)
    source = {
        "path": str(model.path),
        "runtime": runtime_of(model),
        "drift_reference": model.metadata.get("drift_reference"),
        "drift": {"window": options.drift_window, "threshold": options.drift_threshold},
    }
    batching: dict[str, Any] = {"max_batch_size": options.max_batch_size,
                                "batch_timeout": options.batch_timeout_ms / 1000}  # fmt: skip
    if options.max_batch_size > 1:
        from export.serve.batching import AdaptiveBatchedLoop

        batching["loop"] = AdaptiveBatchedLoop()
    if facts.kind == "tokens":
        api: Any = LanguageModelAPI(source)
    elif facts.kind == "noise":
        api = DiffusionAPI(source)
    elif facts.kind == "graph":
        api = GraphAPI(source, **batching)
    else:
        api = ClassifierAPI(source, **batching)
    gate = {"facts": facts, "limits": options.limits, "state": STATE, "api_key": api_key,
            "max_queue": options.max_queue, "timeout_s": options.timeout_s}  # fmt: skip
    server = ls.LitServer(
        api,
        accelerator="cpu",
        workers_per_device=options.workers,
        timeout=options.timeout_s,
        healthcheck_path="/ready",
        info_path="/info",
        model_metadata=_info(model, describe(model), options),
        middlewares=[(Gate, gate)],
    )
    _add_routes(server, render)
    signal.signal(signal.SIGTERM, lambda *_: _start_draining(server, options.grace_s))
    server.run(host=options.host, port=options.port, num_api_servers=options.api_servers,
               log_level=options.log_level, generate_client_file=False)  # fmt: skip
    return 0


def _api_key(name: str | None) -> str | None:
    if name is None:
        return None
    key = os.environ.get(name, "")
    if not key:
        raise ConfigError(f"--api_key_env {name}: the environment variable {name} is unset or empty")
    return key


def _info(model: Any, about: dict[str, Any], options: ServeOptions) -> dict[str, Any]:
    card = Path(model.path).with_name("model_card.md")
    return {
        **about,
        "metadata": model.metadata,
        "model_card": card.read_text() if card.is_file() else None,
        "limits": vars(options.limits),
        "batching": {"max_batch_size": options.max_batch_size, "batch_timeout_ms": options.batch_timeout_ms},
    }


def _add_routes(server: Any, render: Any) -> None:
    from fastapi import Response

    queue = "/predict"

    async def health() -> Response:
        return Response("ok", media_type="text/plain")

    async def metrics() -> Response:
        def depth() -> int:
            try:
                return int(server._get_request_queue(queue).qsize())
            except Exception:
                return 0

        return Response(render(lambda: STATE.in_flight.value, depth), media_type="text/plain; version=0.0.4")

    server.app.add_api_route("/health", health, methods=["GET"])
    server.app.add_api_route("/metrics", metrics, methods=["GET"])


def _start_draining(server: Any, grace_s: float) -> None:
    if STATE.draining.is_set():
        return
    log.warning("SIGTERM: draining (finishing %d accepted requests, at most %.0f s)", STATE.in_flight.value, grace_s)
    STATE.draining.set()

    def drain() -> None:
        deadline = time.monotonic() + grace_s
        while STATE.in_flight.value > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        unanswered = STATE.in_flight.value
        (log.error if unanswered else log.warning)("drained: %d accepted requests unanswered%s", unanswered,
                                                   " (grace period over)" if unanswered else "")  # fmt: skip
        server.uvicorn_graceful_timeout = max(1.0, deadline - time.monotonic())
        server._shutdown_event.set()

    threading.Thread(target=drain, name="zoo-serve-drain", daemon=True).start()
