"""``zoo serve --emit-deploy DIR``: a container image and Kubernetes manifests that run this model's server.

Written for replicas behind a Service: the image holds the model file and only the ``serve`` extra (CPU
PyTorch), runs as a non-root user, and starts ``zoo serve`` on 0.0.0.0 with the options given. The Deployment
wires the probes to the server's own (``/health`` liveness, ``/ready`` readiness and start-up), requests
resources, and gives the pod time to drain: a ``preStop`` pause lets the Service stop routing to it before the
server gets SIGTERM, then ``--grace_s`` to answer what it accepted.
"""

from __future__ import annotations

import math
import shlex
import shutil
from pathlib import Path
from typing import Any

import yaml

from export.serve.server import ServeOptions
from zoo.errors import MissingFileError

__all__ = ["PRESTOP_S", "deployment_manifest", "emit_deploy", "serve_command"]

PORT = 8000
PRESTOP_S = 5  # endpoints controllers and kube-proxy take a few seconds to stop routing to a terminating pod
USER_ID = 10001


def serve_command(model_file: str, options: ServeOptions) -> list[str]:
    """``zoo serve`` in the container: the options that differ from the defaults, on 0.0.0.0:8000."""
    defaults = ServeOptions()
    command = ["zoo", "serve", model_file, "--host", "0.0.0.0", "--port", str(PORT)]
    for name in ("workers", "max_batch_size", "batch_timeout_ms", "runtime", "timeout_s", "max_queue", "api_key_env",
                 "drift_window", "drift_threshold"):  # fmt: skip
        value = getattr(options, name)
        if value != getattr(defaults, name) and value is not None:
            command += [f"--{name}", str(value)]
    return [*command, "--grace_s", f"{options.grace_s:g}"]  # always: the pod's grace period is derived from it


def dockerfile(model_file: str, extra_files: list[str], options: ServeOptions) -> str:
    """A slim image with CPU PyTorch, ``lightning-zoo[serve]``, the model, a non-root user."""
    files = " ".join([model_file, *extra_files])
    command = ", ".join(f'"{part}"' for part in serve_command(f"/models/{model_file}", options))
    return f"""# Built by `zoo serve --emit-deploy`: docker build -t IMAGE . && docker run -p 8000:8000 IMAGE
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# CPU wheels of PyTorch first: the default ones carry CUDA (gigabytes) a CPU server never uses.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch torchvision \\
 && pip install "lightning-zoo[serve]"
RUN useradd --create-home --uid {USER_ID} zoo
COPY --chown={USER_ID}:{USER_ID} {files} /models/
USER {USER_ID}
EXPOSE {PORT}
STOPSIGNAL SIGTERM
CMD [{command}]
"""


def deployment_manifest(
    name: str, image: str, model_file: str, options: ServeOptions, replicas: int = 2
) -> dict[str, Any]:
    """A ``apps/v1`` Deployment running the image with zoo's probes, resources and drain time."""
    container: dict[str, Any] = {
        "name": "zoo-serve",
        "image": image,
        "command": serve_command(f"/models/{model_file}", options),
        "ports": [{"name": "http", "containerPort": PORT}],
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5, "failureThreshold": 1},
        "startupProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2, "failureThreshold": 90},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_S)]}}},
        "resources": {
            "requests": {"cpu": str(options.workers), "memory": f"{512 * options.workers + 512}Mi"},
            "limits": {"memory": f"{1024 * options.workers + 1024}Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # metric files, multipart spooling
    }
    if options.api_key_env:
        secret = {"name": f"{name}-api-key", "key": "key"}
        container["env"] = [{"name": options.api_key_env, "valueFrom": {"secretKeyRef": secret}}]
    labels = _labels(name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": PRESTOP_S + math.ceil(options.grace_s) + 5,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def service_manifest(name: str) -> dict[str, Any]:
    """A ClusterIP Service on port 80 with Prometheus' scrape annotations for ``/metrics``."""
    labels = _labels(name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels, "annotations": {
            "prometheus.io/scrape": "true", "prometheus.io/path": "/metrics", "prometheus.io/port": str(PORT)}},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }  # fmt: skip


def _labels(name: str) -> dict[str, str]:
    """What the Deployment's pods carry and the Service selects."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "zoo-serve"}


def emit_deploy(
    model: str | Path, out: str | Path, options: ServeOptions, image: str = "zoo-serve:latest", replicas: int = 2
) -> list[Path]:
    """Copy the model (and its model card) into ``out`` and write the Dockerfile and ``k8s/*.yaml``.

    Returns:
        The files written.

    Raises:
        FileNotFoundError: When ``model`` does not exist.
    """
    model = Path(model)
    if not model.is_file():
        raise MissingFileError(f"{model} does not exist; give the artifact or checkpoint to deploy")
    out = Path(out)
    (out / "k8s").mkdir(parents=True, exist_ok=True)
    written = [Path(shutil.copy2(model, out / model.name))]
    card = model.with_name("model_card.md")
    extra = [card.name] if card.is_file() else []
    if card.is_file():
        written.append(Path(shutil.copy2(card, out / card.name)))
    name = "zoo-" + "".join(c if c.isalnum() else "-" for c in model.name.split(".")[0].lower()).strip("-")
    files = {
        out / "Dockerfile": dockerfile(model.name, extra, options),
        out / "k8s" / "deployment.yaml": yaml.safe_dump(deployment_manifest(name, image, model.name, options,
                                                                            replicas), sort_keys=False),
        out / "k8s" / "service.yaml": yaml.safe_dump(service_manifest(name), sort_keys=False),
    }  # fmt: skip
    for path, text in files.items():
        path.write_text(text)
        written.append(path)
    commands = [f"docker build -t {image} {shlex.quote(str(out))}", f"kubectl apply -f {shlex.quote(str(out / 'k8s'))}"]
    (out / "DEPLOY.md").write_text("\n".join(["# Deploying " + model.name, "", "```bash", *commands, "```", ""]))
    written.append(out / "DEPLOY.md")
    return written
