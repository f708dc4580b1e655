"""What the supervising process shares with the HTTP processes it forks: draining, and requests in flight."""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STATE", "ServerState"]


@dataclass
class ServerState:
    """Created before LitServe forks its API servers, so they share it with this process.

    Attributes:
        draining: Set on SIGTERM: ``/ready`` answers 503 and new requests get 503.
        in_flight: Requests the gate accepted and has not answered, across the API servers.
    """

    draining: Any = field(default_factory=mp.Event)
    in_flight: Any = field(default_factory=lambda: mp.Value("i", 0))


STATE = ServerState()
