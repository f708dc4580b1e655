"""``zoo serve`` of checkpoints: a text classifier, a language model (streaming, timeouts, backpressure, SIGTERM)."""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from export.serve.model import load_servable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def servers(trained_gpt_nano: Path, trained_text_classifier: Path, start_server) -> dict:
    """The text classifier (no key), and gpt_nano with 3 s per request and 24 requests at most in flight."""
    started = {
        "text": start_server(trained_text_classifier, wait=False),
        "lm": start_server(trained_gpt_nano, "--timeout_s", "3", "--max_queue", "24", "--max_new_tokens", "20000",
                           wait=False),
    }  # fmt: skip
    for server in started.values():
        server.wait_ready()
    return started


@pytest.fixture(scope="module")
def language_model(servers: dict):
    return servers["lm"]


def wait_in_flight(server, count: int) -> None:
    """Until the server holds ``count`` accepted requests (10 s at most)."""
    deadline = time.monotonic() + 10
    while server.metrics().get("zoo_serve_in_flight", 0) < count:
        assert time.monotonic() < deadline, f"fewer than {count} requests in flight"
        time.sleep(0.01)


def test_text_classifier_is_served_without_a_key(trained_text_classifier: Path, servers: dict) -> None:
    server = servers["text"]
    texts = ["a wonderful film", "I hated it", "truly great acting"]
    local = load_servable(trained_text_classifier, reference_samples=0).predict(texts, top_k=2)
    status, _, answer = server.post_json({"text": texts, "top_k": 2})
    assert status == 200 and answer["model"] == "bert_tiny"
    for served, expected in zip(answer["predictions"], local, strict=True):
        assert [(p["label"], pytest.approx(p["probability"], abs=1e-5)) for p in served] == expected
    assert server.request("GET", "/info")[0] == 200
    limit = json.loads(server.request("GET", "/info")[2])["model"]["metadata"]["preprocessing"]["max_length"]
    status, _, answer = server.post_json({"text": "a wonderful film " * limit})
    assert status == 422 and f"this model takes at most {limit}" in answer["error"]
    assert server.post_json({"text": ["fine", 3]})[0] == 400


def test_a_language_model_generates_whole_or_streamed(trained_gpt_nano: Path, language_model) -> None:
    options = {"max_new_tokens": 40, "temperature": 0.8, "top_k": 20, "seed": 3}
    local = load_servable(trained_gpt_nano, reference_samples=0).generate("ROMEO:", **options)
    status, _, answer = language_model.post_json({"prompt": "ROMEO:", **options})
    assert status == 200 and answer["completion"] == local[len("ROMEO:") :] and answer["tokens"] == 40

    status, _, body = language_model.request("POST", "/predict", json.dumps({"prompt": "ROMEO:", "stream": True,
                                             **options}).encode(), {"Content-Type": "application/json"})  # fmt: skip
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert status == 200 and len(lines) > 2
    assert "".join(line["token"] for line in lines[:-1]) == lines[-1]["completion"] == answer["completion"]

    for payload, reason in [({"prompt": "x" * 100}, "the prompt is 100 tokens long; this model's context is 64"),
                            ({"prompt": "caf\u00e9"}, "the prompt cannot be tokenized"),
                            ({"prompt": "A", "max_new_tokens": 20001}, "max_new_tokens is 20001; it must be from 1"),
                            ({"prompt": "A", "temperature": "hot"}, "temperature must be a number")]:  # fmt: skip
        status, _, answer = language_model.post_json(payload)
        assert status == 422 and reason in answer["error"], answer
    assert language_model.post_json({"text": "A"})[0] == 400


def test_a_slow_request_times_out_and_a_full_queue_answers_503(language_model) -> None:
    started = time.monotonic()
    status, _, answer = language_model.post_json({"prompt": "A", "max_new_tokens": 20000})
    assert status == 504 and "3 s timeout" in answer["error"] and time.monotonic() - started < 15

    def ask(tokens: int) -> tuple[int, dict]:
        status, headers, _ = language_model.post_json({"prompt": "A", "max_new_tokens": tokens})
        return status, headers

    with ThreadPoolExecutor(31) as pool:
        blocker = pool.submit(ask, 800)  # holds the one worker for about a second
        wait_in_flight(language_model, 1)
        answers = list(pool.map(ask, [20] * 30))
    assert blocker.result()[0] == 200
    busy = [headers for status, headers in answers if status == 503]
    assert {status for status, _ in answers} == {200, 503} and len(busy) >= 1
    assert all(headers.get("retry-after") == "1" for headers in busy)
    metrics = language_model.metrics()
    assert metrics['zoo_serve_requests_total{status="503"}'] >= 6 and metrics["zoo_serve_in_flight"] == 0


def test_sigterm_answers_every_accepted_request_then_exits_0(language_model) -> None:
    def ask(tokens: int) -> int:
        return language_model.post_json({"prompt": "A", "max_new_tokens": tokens})[0]

    with ThreadPoolExecutor(21) as pool:
        accepted = [pool.submit(ask, 800)]  # holds the one worker for about a second
        wait_in_flight(language_model, 1)
        accepted += [pool.submit(ask, 20) for _ in range(20)]
        wait_in_flight(language_model, 21)
        language_model.process.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        try:
            refused = language_model.post_json({"prompt": "A", "max_new_tokens": 1})
            assert refused[0] == 503 and "shutting down" in refused[2]["error"]
        except OSError:
            pass  # already closed: refused either way
        statuses = [future.result() for future in accepted]
    assert statuses == [200] * 21
    assert language_model.process.wait(timeout=30) == 0
    assert "drained: 0 accepted requests unanswered" in language_model.log.read_text()
