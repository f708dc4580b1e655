"""The ASGI middleware in front of LitServe: auth, draining, backpressure, limits, parsing, timeouts, metrics.

It sees every ``/predict`` request before LitServe queues it, and every answer after, so that

- a missing or wrong ``Authorization: Bearer`` key is a 401 on ``/predict`` and ``/info`` (compared in constant
  time; the probes and ``/metrics`` stay open for the orchestrator);
- while draining, or with ``max_queue`` requests already waiting, a new request gets 503 with ``Retry-After``
  instead of joining a queue that only grows;
- the body is read up to ``max_body_bytes`` (413 above it, whatever ``Content-Length`` claims) and checked by
  :func:`export.serve.requests.parse_request` (400/415/422 with the reason), then handed on rewritten as the
  worker's JSON payload;
- an answer that has not started within ``timeout_s`` becomes a 504;
- nothing unexpected reaches the client but ``{"error": "internal error"}`` with 500 (the trace goes to the log);
- status counts and latency go to :mod:`export.serve.metrics` (in-flight requests are the shared counter).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from export.serve.metrics import LATENCY, REQUESTS
from export.serve.requests import Limits, ModelFacts, RequestError, image_payload, parse_request

__all__ = ["Gate"]

log = logging.getLogger(__name__)

_PROTECTED = ("/predict", "/info")


class Gate:
    """Wraps LitServe's FastAPI app (added with ``middlewares=[(Gate, {...})]``).

    Args:
        app: The app it wraps.
        facts: The served model, for parsing requests.
        limits: Per-request limits.
        state: The server's shared state (``draining`` event, ``in_flight`` counter).
        api_key: The key ``/predict`` and ``/info`` require, or ``None`` for none.
        max_queue: Requests accepted and not yet answered, across the server, before new ones get 503.
        timeout_s: Seconds a request may take before it is answered 504.
    """

    def __init__(
        self,
        app: ASGIApp,
        facts: ModelFacts,
        limits: Limits,
        state: Any,
        api_key: str | None,
        max_queue: int,
        timeout_s: float,
    ) -> None:
        self.app = app
        self.facts = facts
        self.limits = limits
        self.state = state
        self.api_key = api_key
        self.max_queue = max_queue
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route ``/predict`` through the checks; ask for the key on ``/info``; pass the rest."""
        path = scope.get("path", "")
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if path in _PROTECTED and not self._authorized(scope):
            await _answer(send, 401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                          {"www-authenticate": "Bearer"})  # fmt: skip
            return
        if path != "/predict" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = await self._predict(scope, receive, send)
        REQUESTS.labels(status=str(status)).inc()
        LATENCY.observe(time.perf_counter() - started)

    def _authorized(self, scope: Scope) -> bool:
        if self.api_key is None:
            return True
        header = dict(scope.get("headers") or ()).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> int:
        if self.state.draining.is_set():
            return await _answer(send, 503, "the server is shutting down", {"retry-after": "5", "connection": "close"})
        with self.state.in_flight.get_lock():
            busy = self.state.in_flight.value >= self.max_queue
            if not busy:
                self.state.in_flight.value += 1
        if busy:
            return await _answer(send, 503, f"the server is busy: {self.max_queue} requests are waiting",
                                 {"retry-after": "1"})  # fmt: skip
        try:
            return await self._checked(scope, receive, send)
        except Exception:
            log.exception("unexpected error answering /predict")
            return await _answer(send, 500, "internal error")
        finally:
            with self.state.in_flight.get_lock():
                self.state.in_flight.value -= 1

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> int:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
        declared = headers.get("content-length", "0") or "0"
        if not declared.isdigit():
            return await _answer(send, 400, f"Content-Length is not a number: {declared!r}")
        try:
            if int(declared) > self.limits.max_body_bytes:
                raise RequestError(413, _too_large(int(declared), self.limits))
            body = await _read_body(receive, self.limits)
            content_type = headers.get("content-type", "")
            if self.facts.kind == "image" and content_type.lower().startswith("multipart/form-data"):
                payload = await _multipart(scope, body, self.facts, self.limits)
            else:
                payload = parse_request(content_type, body, self.facts, self.limits)
        except RequestError as err:
            if err.status == 413:  # let the client finish sending, or it meets a closed socket, not the answer
                await _drain(receive, _DRAIN_LIMIT_BYTES)
                return await _answer(send, 413, err.reason, {"connection": "close"})
            return await _answer(send, err.status, err.reason)
        payload["deadline"] = time.time() + self.timeout_s  # a worker stops generating for a caller gone by then
        return await self._forward(scope, json.dumps(payload).encode(), send)

    async def _forward(self, scope: Scope, body: bytes, send: Send) -> int:
        """Hand the payload to LitServe; hold the response start back until its first body part (or a 504)."""
        replaced = (b"content-type", b"content-length")
        headers = [(k, v) for k, v in scope.get("headers") or () if k.lower() not in replaced]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        inner = dict(scope, headers=headers)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()  # no more body; wait to be cancelled like a real socket
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        start: Message | None = None
        status = 500
        began = asyncio.Event()

        async def relay(message: Message) -> None:
            nonlocal start, status
            if message["type"] == "http.response.start":
                start, status = message, int(message["status"])
                return
            if start is not None:
                await send(start)
                start = None
                began.set()
            await send(message)

        task = asyncio.ensure_future(self.app(inner, replay, relay))
        waiter = asyncio.ensure_future(began.wait())
        done, _ = await asyncio.wait({task, waiter}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            task.cancel()
            waiter.cancel()
            return await _answer(send, 504, f"no answer within the server's {self.timeout_s:g} s timeout")
        waiter.cancel()
        await task
        return status


_DRAIN_LIMIT_BYTES = 64 * 2**20  # how much of a refused body is read and dropped before the socket closes


async def _read_body(receive: Receive, limits: Limits) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise RequestError(413, _too_large(size, limits))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop what is left of a refused body, up to ``budget`` bytes (past that, the socket is closed).

    A client (urllib, requests, curl) writes its whole body before it reads the answer; a server that answers
    and closes first leaves it a broken pipe instead of the 413 and its reason.
    """
    while budget > 0:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _too_large(size: int, limits: Limits) -> str:
    return f"the body is at least {size:,} bytes; the limit is {limits.max_body_bytes:,} (--max_body_mb)"


async def _multipart(scope: Scope, body: bytes, facts: ModelFacts, limits: Limits) -> dict[str, Any]:
    """Image files from a multipart form (every file field, in order; a ``top_k`` field allowed)."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, replay).form(max_files=limits.max_items, max_fields=limits.max_items + 1)
    except Exception as err:
        raise RequestError(400, f"the multipart body cannot be read: {err}") from None
    files = [await value.read() for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        raise RequestError(400, "the multipart form holds no file; send the image as a file field")
    top_k = form.get("top_k")
    try:
        top_k = None if top_k is None else int(str(top_k))
    except ValueError:
        raise RequestError(422, f"top_k must be a positive integer, got {top_k!r}") from None
    return image_payload(files, facts, limits, top_k)


async def _answer(send: Send, status: int, reason: str, headers: dict[str, str] | None = None) -> int:
    body = json.dumps({"error": reason}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
    return status
