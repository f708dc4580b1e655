"""``zoo serve`` under load, side by side with the one-request-at-a-time FastAPI server a user would write.

    python benchmarks/serve_load.py run --artifact exported/speedrun_net_tiny.onnx int8/speedrun_net_tiny.int8.onnx \
        --concurrency 1 8 32 64 --seconds 6 --out benchmarks/results/serve_load_cpu.jsonl
    python benchmarks/serve_load.py shutdown --artifact exported/speedrun_net_tiny.onnx --concurrency 32
    python benchmarks/serve_load.py plot --records benchmarks/results/serve_load_cpu.jsonl --out serve_load.png

``run``: for each artifact, three servers in turn on 127.0.0.1, each started as a user starts it and given the
same requests (one CIFAR-10 JPEG per POST, raw bytes, from the shipped test split):

- ``zoo serve`` with dynamic batching (``--max_batch_size 32 --batch_timeout_ms 5``),
- ``zoo serve`` without it (``--max_batch_size 1``),
- ``plain``: a FastAPI endpoint (uvicorn, one process) that runs ``export.load(artifact).predict`` in the
  request handler: the same onnxruntime session and preprocessing, one request at a time.

At each concurrency, that many client threads (keep-alive connections) send requests back to back for
``--seconds`` after a one-second warm-up; throughput, p50/p99 latency and errors are recorded. The load
generator shares the machine's cores with the server, as it would on a one-box test.

``shutdown``: ``zoo serve`` under the given concurrency receives SIGTERM half way; each request ends answered
(200), refused (503 or connection refused: never accepted, safe to retry) or reset (its keep-alive connection
closed under it). Lost requests are those the server accepted and did not answer, as its drain reports them
(``drained: N accepted requests unanswered``); the target is 0.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_accuracy import hardware

REPO = Path(__file__).resolve().parents[1]
MINI_ARCHIVE = REPO / "zoo" / "data" / "assets" / "cifar10-mini.tar.gz"


def test_images(count: int = 64) -> list[bytes]:
    """The first ``count`` JPEGs of the shipped test split."""
    images = []
    with tarfile.open(MINI_ARCHIVE) as archive:
        for member in archive.getmembers():
            if member.name.startswith("test/") and member.isfile():
                images.append(archive.extractfile(member).read())
                if len(images) == count:
                    break
    return images


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(port: int, path: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready")


def start(kind: str, artifact: Path, port: int, log: Path, batch_timeout_ms: float = 5.0) -> subprocess.Popen:
    """``zoo serve`` (``batched`` or ``unbatched``) or the ``plain`` FastAPI server, on ``port``."""
    if kind == "plain":
        command = [sys.executable, __file__, "plain-server", "--artifact", str(artifact), "--port", str(port)]
    else:
        batch = "32" if kind == "batched" else "1"
        command = [sys.executable, "-m", "zoo", "serve", str(artifact), "--port", str(port), "--max_batch_size",
                   batch, "--batch_timeout_ms", str(batch_timeout_ms), "--max_queue", "1024",
                   "--log_level", "warning"]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_ready(port, "/ready", process)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


class Load:
    """``concurrency`` threads posting images back to back until ``stop`` is set; per request its outcome."""

    def __init__(self, port: int, images: list[bytes], concurrency: int) -> None:
        self.port, self.images, self.concurrency = port, images, concurrency
        self.stop = threading.Event()
        self.measuring = threading.Event()
        self.latencies: list[float] = []
        self.outcomes: dict[str, int] = {}
        self.lock = threading.Lock()

    def _client(self, index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = 0
        while not self.stop.is_set():
            body = self.images[(index + sent * self.concurrency) % len(self.images)]
            sent += 1
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body, {"Content-Type": "image/jpeg"})
                response = connection.getresponse()
                response.read()
                outcome = str(response.status)
                if response.getheader("connection", "").lower() == "close":
                    connection.close()
            except ConnectionRefusedError:
                outcome = "refused"
                connection.close()
                time.sleep(0.01)
            except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
                outcome = "reset"  # the connection closed under the request; the server log says if it was accepted
                connection.close()
            except (OSError, http.client.HTTPException) as err:
                outcome = f"error: {type(err).__name__}"
                connection.close()
            elapsed = time.perf_counter() - started
            if self.measuring.is_set():
                with self.lock:
                    self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
                    if outcome == "200":
                        self.latencies.append(elapsed)
        connection.close()

    def run(self, warmup_s: float, seconds: float, during: Any = None) -> float:
        """Warm up, measure for ``seconds`` (calling ``during`` half way), stop; the measured wall time."""
        threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.concurrency)]
        for thread in threads:
            thread.start()
        time.sleep(warmup_s)
        self.measuring.set()
        started = time.perf_counter()
        if during is not None:
            time.sleep(seconds / 2)
            during()
            time.sleep(seconds / 2)
        else:
            time.sleep(seconds)
        wall = time.perf_counter() - started
        self.measuring.clear()
        self.stop.set()
        for thread in threads:
            thread.join(timeout=70)
        return wall


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run(args: argparse.Namespace) -> None:
    images = test_images()
    records = []
    with tempfile.TemporaryDirectory() as logs:
        for artifact in map(Path, args.artifact):
            for kind in args.servers:
                port = free_port()
                process = start(kind, artifact, port, Path(logs) / f"{artifact.stem}-{kind}.log", args.batch_timeout_ms)
                try:
                    for concurrency in args.concurrency:
                        load = Load(port, images, concurrency)
                        wall = load.run(args.warmup, args.seconds)
                        answered = load.outcomes.get("200", 0)
                        record = {
                            "artifact": artifact.name, "server": kind, "concurrency": concurrency,
                            "batch_timeout_ms": args.batch_timeout_ms if kind == "batched" else None,
                            "throughput_rps": round(answered / wall, 1),
                            "p50_ms": round(1000 * percentile(load.latencies, 50), 1) if answered else None,
                            "p99_ms": round(1000 * percentile(load.latencies, 99), 1) if answered else None,
                            "answered": answered, "errors": sum(n for k, n in load.outcomes.items() if k != "200"),
                            "outcomes": load.outcomes, "seconds": round(wall, 2),
                        }  # fmt: skip
                        records.append(record)
                        print(json.dumps(record), flush=True)
                finally:
                    stop(process)
    _write(args, records)
    _table(records)


def shutdown(args: argparse.Namespace) -> None:
    images = test_images()
    artifact = Path(args.artifact[0])
    records = []
    with tempfile.TemporaryDirectory() as logs:
        for concurrency in args.concurrency:
            port = free_port()
            log = Path(logs) / f"server-{concurrency}.log"
            process = start("batched", artifact, port, log, args.batch_timeout_ms)
            load = Load(port, images, concurrency)
            load.run(args.warmup, args.seconds, during=lambda p=process: p.send_signal(signal.SIGTERM))
            exit_code = process.wait(timeout=60)
            drained = [line for line in log.read_text().splitlines() if "drained:" in line]
            unanswered = int(drained[-1].split("drained:")[1].split()[0]) if drained else None
            refused = sum(n for k, n in load.outcomes.items() if k in ("503", "refused"))
            record = {"artifact": artifact.name, "server": "batched", "concurrency": concurrency,
                      "scenario": "SIGTERM half way", "answered": load.outcomes.get("200", 0), "refused": refused,
                      "reset": load.outcomes.get("reset", 0),
                      "other_errors": {k: n for k, n in load.outcomes.items() if k.startswith("error")},
                      "lost": unanswered, "exit_code": exit_code}  # fmt: skip
            records.append(record)
            print(json.dumps(record), flush=True)
    _write(args, records)


def _write(args: argparse.Namespace, records: list[dict[str, Any]]) -> None:
    if not args.out:
        return
    kind = "serve_shutdown" if args.command == "shutdown" else "serve_load"
    stamp = {"command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:]), "hardware": hardware(),
             "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}  # fmt: skip
    with open(args.out, "a") as out:
        for record in records:
            out.write(json.dumps({"benchmark": kind, **record, **stamp}) + "\n")


def _table(records: list[dict[str, Any]]) -> None:
    print(f"{'artifact':34} {'server':10} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for r in records:
        print(f"{r['artifact']:34} {r['server']:10} {r['concurrency']:>4} {r['throughput_rps']:>8} "
              f"{r['p50_ms'] or '-':>8} {r['p99_ms'] or '-':>8} {r['errors']:>6}")  # fmt: skip


def plot(args: argparse.Namespace) -> None:
    """Throughput and p99 latency against concurrency, one column per artifact, one line per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(args.records).read_text().splitlines() if line.strip()]
    records = [r for r in records if "throughput_rps" in r]
    artifacts = list(dict.fromkeys(r["artifact"] for r in records))
    figure, axes = plt.subplots(2, len(artifacts), figsize=(3.2 * len(artifacts), 5.6), squeeze=False)
    for column, artifact in enumerate(artifacts):
        mine = [r for r in records if r["artifact"] == artifact]
        lines = list(dict.fromkeys((r["server"], r.get("batch_timeout_ms")) for r in mine))
        for server, timeout in lines:
            rows = sorted((r for r in mine if (r["server"], r.get("batch_timeout_ms")) == (server, timeout)),
                          key=lambda r: r["concurrency"])  # fmt: skip
            names = {"unbatched": "zoo serve, no batching", "plain": "plain FastAPI, one at a time"}
            label = f"zoo serve, batching (wait {timeout or 0:g} ms)" if server == "batched" else names[server]
            x = [r["concurrency"] for r in rows]
            axes[0][column].plot(x, [r["throughput_rps"] for r in rows], marker="o", label=label)
            axes[1][column].plot(x, [r["p99_ms"] for r in rows], marker="o", label=label)
        axes[0][column].set_title(artifact, fontsize=9)
        for row, name in enumerate(("requests/s", "p99 latency, ms")):
            axes[row][column].set_xscale("log", base=2)
            axes[row][column].set_xlabel("concurrent clients")
            axes[row][column].set_ylabel(name)
            axes[row][column].grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.suptitle("zoo serve on a 2-core CPU, the load generator on the same machine", fontsize=10)
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(args.out)


def plain_server(args: argparse.Namespace) -> None:
    """The server a user writes around ``export.load``: one async endpoint, one request at a time."""
    import io

    import uvicorn
    from fastapi import FastAPI, Request
    from PIL import Image

    from export import load

    model = load(args.artifact)
    app = FastAPI()

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        image = Image.open(io.BytesIO(await request.body()))
        return {"predictions": [[{"label": label, "probability": p} for label, p in model.predict([image])[0]]]}

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "shutdown"):
        sub = commands.add_parser(name)
        sub.add_argument("--artifact", nargs="+", required=True, help="ONNX artifacts from zoo export / quantize")
        sub.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
        sub.add_argument("--seconds", type=float, default=6.0, help="measured seconds per concurrency")
        sub.add_argument("--warmup", type=float, default=1.0)
        sub.add_argument("--out", default=None, help="append the records to this JSONL file")
        sub.add_argument("--batch_timeout_ms", type=float, default=5.0, help="zoo serve's, when batching")
        if name == "run":
            sub.add_argument("--servers", nargs="+", default=["batched", "unbatched", "plain"],
                             choices=("batched", "unbatched", "plain"))  # fmt: skip
    drawing = commands.add_parser("plot")
    drawing.add_argument("--records", required=True, help="a JSONL file written by run")
    drawing.add_argument("--out", required=True, help="the PNG to write")
    plain = commands.add_parser("plain-server")
    plain.add_argument("--artifact", required=True)
    plain.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    {"run": run, "shutdown": shutdown, "plot": plot, "plain-server": plain_server}[args.command](args)


if __name__ == "__main__":
    main()
