"""``zoo serve``: put an exported artifact or a checkpoint behind HTTP, or write the files to deploy it."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from zoo.arguments import at_least

__all__ = ["run_serve_command"]

_EXAMPLES = """examples:
  zoo serve exported/speedrun_net_tiny.onnx                 # http://127.0.0.1:8000/predict
  curl -s -F file=@cat.jpg http://127.0.0.1:8000/predict
  zoo serve runs/.../last.ckpt --runtime onnxruntime --port 9000 --api_key_env ZOO_API_KEY
  zoo serve exported/speedrun_net_tiny.onnx --emit-deploy deploy/   # Dockerfile + Kubernetes manifests
"""


def build_parser() -> argparse.ArgumentParser:
    """The options of ``zoo serve`` (each a field of :class:`export.serve.server.ServeOptions`)."""
    parser = argparse.ArgumentParser(
        prog="zoo serve",
        description="Serve an exported artifact (ONNX, TorchScript, ExportedProgram) or a checkpoint over HTTP with "
        "LitServe: POST /predict with dynamic batching; GET /health, /ready, /info, /metrics.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="artifact from `zoo export`/`zoo quantize`, or a checkpoint (.ckpt)")
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1 (this machine only, default) or 0.0.0.0")
    parser.add_argument("--port", type=at_least(1024), default=8000)
    parser.add_argument("--workers", type=at_least(1), default=1, help="inference processes, each with the model")
    parser.add_argument("--api_servers", type=at_least(1), default=None, help="HTTP processes (default: --workers)")
    parser.add_argument("--max_batch_size", type=at_least(1), default=32, help="1 turns dynamic batching off")
    parser.add_argument("--batch_timeout_ms", type=at_least(0.0, float), default=0.0,
                        help="wait for more after a batch's first request (0: take what is queued)")  # fmt: skip
    parser.add_argument("--runtime", choices=("onnxruntime", "torchscript", "exported_program", "eager"), default=None,
                        help="artifact: its own (default); checkpoint: eager (default) or exported first")  # fmt: skip
    parser.add_argument("--allow_failed", action="store_true", help="serve an artifact that failed its quality gate")
    parser.add_argument("--api_key_env", default=None,
                        help="environment variable with the Bearer key /predict and /info require")  # fmt: skip
    parser.add_argument("--grace_s", type=at_least(0.0, float), default=30.0,
                        help="after SIGTERM, seconds to answer the requests already accepted")  # fmt: skip
    parser.add_argument("--timeout_s", type=at_least(0.001, float), default=30.0, help="per request (504 after)")
    parser.add_argument("--max_queue", type=at_least(1), default=256,
                        help="requests accepted and unanswered before new ones get 503 with Retry-After")  # fmt: skip
    parser.add_argument("--max_body_mb", type=at_least(0.001, float), default=8.0, help="request body limit (413)")
    parser.add_argument("--max_items", type=at_least(1), default=64, help="images or texts per request (422)")
    parser.add_argument("--max_pixels", type=at_least(1), default=4096 * 4096, help="width x height per image (422)")
    parser.add_argument("--max_new_tokens", type=at_least(1), default=1024, help="language models, per request (422)")
    parser.add_argument("--max_images", type=at_least(1), default=16, help="diffusion models, per request (422)")
    parser.add_argument("--max_nodes", type=at_least(1), default=100_000, help="graph models, per graph (422)")
    parser.add_argument("--drift_window", type=at_least(1), default=512, help="recent inputs compared for drift")
    parser.add_argument("--drift_threshold", type=at_least(0.0, float), default=0.25,
                        help="PSI above which drift is logged as a warning")  # fmt: skip
    parser.add_argument("--log_level", choices=("critical", "error", "warning", "info", "debug"), default="info")
    parser.add_argument("--emit-deploy", "--emit_deploy", dest="emit_deploy", metavar="DIR", default=None,
                        help="write a Dockerfile and Kubernetes manifests for the model to DIR, then exit")  # fmt: skip
    parser.add_argument("--image", default="zoo-serve:latest", help="with --emit-deploy: the container image name")
    parser.add_argument("--replicas", type=at_least(1), default=2, help="with --emit-deploy: Deployment replicas")
    return parser


def run_serve_command(argv: list[str]) -> None:
    """``zoo serve MODEL [options]``: serve until SIGTERM, exit 0 after draining; exit 2 for what cannot be served."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from export.serve.requests import Limits
    from export.serve.server import ServeOptions
    from zoo.errors import MissingExtraError

    limits = Limits(int(args.max_body_mb * 2**20), args.max_items, args.max_pixels, args.max_new_tokens,
                    args.max_nodes, args.max_images)  # fmt: skip
    fields = {name: getattr(args, name) for name in ServeOptions.__dataclass_fields__ if hasattr(args, name)}
    options = ServeOptions(**fields | {"limits": limits})
    try:
        if args.emit_deploy is not None:
            from export.serve.deploy import emit_deploy

            for path in emit_deploy(args.model, args.emit_deploy, options, image=args.image, replicas=args.replicas):
                print(path)
            return
        _require_serve_extra()
        from export.serve.server import serve

        code = serve(args.model, options)
    except (FileNotFoundError, ValueError, MissingExtraError) as err:
        parser.error(str(err))
    # The server has drained and stopped its processes. The interpreter's own teardown (torch's and
    # onnxruntime's native state) would add about 2 s to a pod's termination and do nothing a stopped server
    # needs, so the process ends here, its output flushed.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _require_serve_extra() -> None:
    """Say which extra to install; found without importing (prometheus-client must be imported after setup)."""
    from importlib.util import find_spec

    from zoo.errors import MissingExtraError

    for module in ("litserve", "prometheus_client", "python_multipart"):
        if find_spec(module) is None:
            raise MissingExtraError(f'zoo serve needs {module}: pip install "lightning-zoo[serve]"')
