"""Real ``zoo serve`` processes on 127.0.0.1, and a small HTTP client with bounded waits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


class Server:
    """A ``zoo serve`` process: started in its own process group, stopped with SIGTERM (then killed)."""

    def __init__(self, model: Path, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "zoo", "serve", str(model), "--port", str(self.port), *args]
        with log.open("w") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent,
                                            env={**os.environ, **(env or {})}, start_new_session=True)  # fmt: skip

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Poll ``/ready`` until 200; fail with the server's log if it exits or never gets there."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"zoo serve exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if self.request("GET", "/ready", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"zoo serve not ready after {timeout_s} s:\n{self.log.read_text()[-3000:]}")

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        """``(status, headers with lower-case names, body)``; HTTP errors are answers too."""
        request = urllib.request.Request(self.url + path, data=body, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()

    def post_json(self, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        """POST ``payload`` as JSON to ``/predict``; the answer's JSON (or its text when it is not JSON)."""
        status, got, body = self.request("POST", "/predict", json.dumps(payload).encode(),
                                         {"Content-Type": "application/json", **(headers or {})})  # fmt: skip
        try:
            return status, got, json.loads(body)
        except json.JSONDecodeError:
            return status, got, body.decode(errors="replace")

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as ``{"name{labels}": value}``."""
        text = self.request("GET", "/metrics")[2].decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line and not line.startswith("#")}  # fmt: skip

    def stop(self) -> None:
        """SIGTERM, then kill the whole group if it has not exited within 60 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """``start_server(model, *args, env=..., wait=True)``: a server, stopped when the module's tests are done.

    With ``wait=False`` it is only started: servers started together load in parallel; call ``wait_ready``.
    """
    started: list[Server] = []

    def start(model: Path, *args: str, env: dict[str, str] | None = None, wait: bool = True) -> Server:
        server = Server(Path(model), list(args), tmp_path_factory.mktemp("serve") / "server.log", env)
        started.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    for server in started:  # all drain at once
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
    for server in started:
        server.stop()
