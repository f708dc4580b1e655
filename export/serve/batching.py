"""How an inference worker gathers a batch: block for the first request, take what is queued, wait no longer.

LitServe's own batched loop polls its request queue in 1 ms slices for the whole ``batch_timeout`` and, with
a timeout of 0, spins on an empty queue; every poll is a round trip to the multiprocessing manager that owns
the queue. On a CPU server that costs more than the model (measured: ``benchmarks/serve_load.py``). This loop,
plugged in through LitServe's ``LitAPI(loop=...)`` extension point, blocks until a request arrives, takes every
request already waiting (up to ``max_batch_size``), and waits for more only until ``batch_timeout`` after the
first. Under load, batches form from the queue that builds while the model runs; an idle worker sleeps; a lone
request waits at most ``batch_timeout``.

It sends no ``START`` message per request: LitServe uses those only to fail the requests of a worker that died
when it restarts workers, which ``zoo serve`` does not ask for (a dead worker stops the server, and the
orchestrator restarts the pod); each is two more round trips through the manager.
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from litserve.loops.base import _SENTINEL_VALUE, _StopLoopError
from litserve.loops.simple_loops import BatchedLoop

__all__ = ["AdaptiveBatchedLoop"]


class AdaptiveBatchedLoop(BatchedLoop):
    """LitServe's batched loop, gathering each batch as the module says instead of polling."""

    def get_batch_requests(self, lit_api: Any, request_queue: Any, transport: Any) -> tuple[list, list]:
        """``(payloads, timed_out_uids)``: one batch, as LitServe's loop expects it."""
        try:
            items = [request_queue.get(timeout=1.0)]
        except Empty:
            return [], []
        deadline = time.monotonic() + lit_api.batch_timeout
        while len(items) < lit_api.max_batch_size:
            try:
                items.append(request_queue.get_nowait())
            except Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    items.append(request_queue.get(timeout=remaining))
                except Empty:
                    break
        payloads, timed_out = [], []
        apply_timeout = lit_api.request_timeout not in (-1, False, None)
        for item in items:
            if item == _SENTINEL_VALUE:
                raise _StopLoopError()
            response_queue_id, uid, timestamp, payload = item
            if apply_timeout and time.monotonic() - timestamp > lit_api.request_timeout:
                timed_out.append((response_queue_id, uid))
            else:
                payloads.append((response_queue_id, uid, payload))
        return payloads, timed_out
