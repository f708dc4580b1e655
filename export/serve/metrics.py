"""Prometheus metrics of ``zoo serve``, gathered from every process of the server.

LitServe answers HTTP in one or more API processes and runs the model in separate inference workers, so
request counts and latencies are observed in one kind of process and batch sizes and drift in the other.
prometheus-client's multiprocess mode joins them: each process writes its values to files under
``PROMETHEUS_MULTIPROC_DIR`` (set by :func:`export.serve.server.serve` before this module, or the gate and
workers that import it, are imported), and ``/metrics`` reads them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

__all__ = ["BATCH_SIZE", "DRIFT", "DRIFT_SCORE", "LATENCY", "REQUESTS", "render"]

REQUESTS = Counter("zoo_serve_requests", "Requests to /predict by HTTP status", ["status"])
LATENCY = Histogram(
    "zoo_serve_request_seconds",
    "Time from a /predict request's arrival to its answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BATCH_SIZE = Histogram(
    "zoo_serve_batch_size", "Requests run together in one call of the model", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
DRIFT = Gauge(
    "zoo_serve_input_drift_psi",
    "Population-stability index of an input feature over the recent window against the export's reference",
    ["feature"],
    multiprocess_mode="livemax",
)
DRIFT_SCORE = Gauge(
    "zoo_serve_input_drift_score", "The largest input_drift_psi (0 until the window is full enough)",
    multiprocess_mode="livemax",
)  # fmt: skip


class _Counts:
    """Gauges the server already counts (requests in flight, queued), read when ``/metrics`` is scraped."""

    def __init__(self, in_flight: Callable[[], int], queue_depth: Callable[[], int]) -> None:
        self.in_flight, self.queue_depth = in_flight, queue_depth

    def collect(self):
        yield GaugeMetricFamily("zoo_serve_in_flight", "Requests accepted and not yet answered", value=self.in_flight())
        yield GaugeMetricFamily("zoo_serve_queue_depth", "Requests queued for an inference worker",
                                value=self.queue_depth())  # fmt: skip


def render(in_flight: Callable[[], int], queue_depth: Callable[[], int]) -> bytes:
    """Every process's metrics plus the in-flight and queued requests, in Prometheus' text format."""
    registry = CollectorRegistry()
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.MultiProcessCollector(registry)
    registry.register(_Counts(in_flight, queue_depth))
    return generate_latest(registry)
