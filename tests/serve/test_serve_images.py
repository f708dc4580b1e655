"""``zoo serve`` of an exported image classifier: answers, batching, every error status, auth, drift, deploy files."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from export import export_checkpoint, load
from export.formats import read_metadata, rewrite_onnx_metadata
from export.serve.model import load_servable
from zoo.errors import ConfigError

pytestmark = pytest.mark.slow

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def artifact(trained_cnn: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's 60-step quickstart network as ONNX, with its drift reference from the validation split."""
    out = tmp_path_factory.mktemp("exported")
    report = export_checkpoint(trained_cnn, out, formats=["onnx"], reference_samples=512)
    assert report.ok
    return out / report.rows[0]["file"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, extract_images) -> list[Path]:
    """52 real CIFAR-10 test JPEGs per class, sorted."""
    tree = extract_images(tmp_path_factory.mktemp("images"), per_class=52, splits=("test",))
    return sorted(tree.glob("test/*/*.jpg"))


@pytest.fixture(scope="module")
def server(artifact: Path, start_server):
    """The artifact served with a key, a 1 MiB body limit, a 1-megapixel image limit and a 256-input drift window."""
    return start_server(artifact, "--api_key_env", "ZOO_TEST_KEY", "--max_body_mb", "1", "--max_pixels", "1000000",
                        "--drift_window", "256", "--max_batch_size", "32", "--batch_timeout_ms", "20",
                        env={"ZOO_TEST_KEY": KEY})  # fmt: skip


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_probes_info_and_answers_equal_the_artifacts_own_predict(server, artifact: Path, images: list[Path]) -> None:
    assert server.request("GET", "/health")[0] == 200
    assert server.request("GET", "/ready")[0] == 200
    assert server.request("GET", "/info")[0] == 401
    status, _, info = server.request("GET", "/info", headers=AUTH)
    model = json.loads(info)["model"]
    assert status == 200 and model["name"] == "speedrun_net_tiny" and model["format"] == "onnx"
    assert model["metadata"]["labels"][3] == "cat" and "# speedrun_net_tiny" in model["model_card"]

    local = load(artifact).predict(images[:3], top_k=3)
    status, _, answer = server.post_json({"images": [b64(p) for p in images[:3]], "top_k": 3}, AUTH)
    assert status == 200 and answer["model"] == "speedrun_net_tiny" and len(answer["version"]) == 12
    for served, expected in zip(answer["predictions"], local, strict=True):
        assert [p["label"] for p in served] == [label for label, _ in expected]
        assert [p["probability"] for p in served] == pytest.approx([p for _, p in expected], abs=1e-5)

    status, _, raw = server.request("POST", "/predict", images[0].read_bytes(), {"Content-Type": "image/jpeg", **AUTH})
    assert status == 200 and json.loads(raw)["predictions"][0][0]["label"] == local[0][0][0]
    boundary = "zooboundary"
    form = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{p.name}"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + p.read_bytes()
        + b"\r\n"
        for p in images[:2]
    )
    form += f"--{boundary}--\r\n".encode()  # fmt: skip
    status, _, raw = server.request("POST", "/predict", form,
                                    {"Content-Type": f"multipart/form-data; boundary={boundary}", **AUTH})  # fmt: skip
    assert status == 200 and [row[0]["label"] for row in json.loads(raw)["predictions"]] == [
        local[0][0][0], local[1][0][0]]  # fmt: skip


def test_concurrent_callers_are_batched_and_each_get_their_answer(server, artifact: Path, images: list[Path]) -> None:
    chosen = images[::8][:64]  # 64 distinct images across the classes
    expected = [row[0] for row in load(artifact).predict(chosen, top_k=1)]
    before = server.metrics()

    def ask(path: Path) -> tuple[int, dict]:
        status, _, answer = server.post_json({"images": [b64(path)], "top_k": 1}, AUTH)
        return status, answer

    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(ask, chosen))
    assert all(status == 200 for status, _ in answers)
    for (_, answer), (label, probability) in zip(answers, expected, strict=True):
        assert answer["predictions"][0][0]["label"] == label
        assert answer["predictions"][0][0]["probability"] == pytest.approx(probability, abs=1e-5)
    after = server.metrics()
    batches = after["zoo_serve_batch_size_count"] - before.get("zoo_serve_batch_size_count", 0)
    single = after['zoo_serve_batch_size_bucket{le="1.0"}'] - before.get('zoo_serve_batch_size_bucket{le="1.0"}', 0)
    assert batches < 64 and single < batches, "64 concurrent requests should share batches"
    assert after['zoo_serve_requests_total{status="200"}'] >= 64


def test_bad_requests_get_their_own_status_and_reason(server, images: list[Path]) -> None:
    def post(body: bytes, content_type: str, headers: dict | None = None) -> tuple[int, str]:
        sent = {"Content-Type": content_type, **(AUTH if headers is None else headers)}
        status, _, raw = server.request("POST", "/predict", body, sent)
        return status, raw.decode()

    good = b64(images[0])
    big = io.BytesIO()
    Image.new("RGB", (1200, 1000), (120, 30, 200)).save(big, "PNG")
    cases = {
        "no key": (post(b"{}", "application/json", {}), 401, "Bearer"),
        "wrong key": (post(b"{}", "application/json", {"Authorization": "Bearer nope"}), 401, "API key"),
        "content type": (post(b"hello", "text/plain"), 415, "text/plain is not accepted"),
        "json": (post(b'{"images": [', "application/json"), 400, "not valid JSON"),
        "base64": (post(b'{"images": ["@@@"]}', "application/json"), 400, "images[0] is not valid base64"),
        "image bytes": (post(b"definitely not a picture", "image/jpeg"), 400, "images[0] is not an image"),
        "field": (post(json.dumps({"imgs": [good]}).encode(), "application/json"), 400, "unknown field(s) ['imgs']"),
        "items": (post(json.dumps({"images": [good] * 65}).encode(), "application/json"), 422, "the limit is 64"),
        "pixels": (post(big.getvalue(), "image/png"), 422, "1200x1000 = 1,200,000 pixels; the limit is 1,000,000"),
        "top_k": (post(json.dumps({"images": [good], "top_k": 0}).encode(), "application/json"), 422, "top_k"),
        "body": (post(b"0" * (16 * 2**20), "application/octet-stream"), 413, "the limit is 1,048,576"),  # sent whole
    }
    for name, ((status, body), want, reason) in cases.items():
        assert status == want, (name, body)
        assert reason in json.loads(body)["error"], (name, body)
        assert "Traceback" not in body

    def mixed(index: int) -> int:
        payload = {"images": ["not base64!" if index == 3 else good]}
        return server.post_json(payload, AUTH)[0]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(mixed, range(8)))
    assert statuses == [200, 200, 200, 400, 200, 200, 200, 200]


def test_a_failing_input_in_a_worker_batch_is_answered_alone(artifact: Path, images: list[Path]) -> None:
    from export.serve.workers import ClassifierAPI, Decoded, Rejected

    api = ClassifierAPI({"path": str(artifact), "runtime": "onnxruntime"}, max_batch_size=4)
    api.setup("cpu")
    decoded = [api.decode_request({"images": [b64(images[0])], "top_k": 2}),
               api.decode_request({"images": [base64.b64encode(b"GIF89a truncated").decode()], "top_k": 2}),
               api.decode_request({"images": [b64(images[1]), b64(images[2])], "top_k": 1})]  # fmt: skip
    assert isinstance(decoded[0], Decoded) and isinstance(decoded[1], Rejected) and decoded[1].status == 400
    answers = [api.encode_response(a) for a in api.unbatch(api.predict(api.batch(decoded)))]
    assert [len(row) for row in answers[0]["predictions"]] == [2]
    assert answers[1].status_code == 400 and b"could not be prepared" in answers[1].body
    assert [len(row) for row in answers[2]["predictions"]] == [1, 1]


def test_drift_rises_for_shifted_inputs_and_not_for_in_distribution_ones(server, images: list[Path]) -> None:
    def send(paths: list[Path], darken: bool) -> None:
        for start in range(0, len(paths), 64):
            batch = []
            for path in paths[start : start + 64]:
                if darken:
                    out = io.BytesIO()
                    with Image.open(path) as image:
                        image.point(lambda v: v * 0.35).save(out, "PNG")
                    batch.append(base64.b64encode(out.getvalue()).decode())
                else:
                    batch.append(b64(path))
            assert server.post_json({"images": batch}, AUTH)[0] == 200

    send(images[:256], darken=False)
    calm = server.metrics()
    assert 0 <= calm["zoo_serve_input_drift_score"] < 0.25, calm
    send(images[256:512], darken=True)
    shifted = server.metrics()
    assert shifted["zoo_serve_input_drift_score"] > 0.25
    assert shifted['zoo_serve_input_drift_psi{feature="channel0_mean"}'] > 0.25
    assert "input drift" in server.log.read_text()


def test_a_failed_artifact_or_the_wrong_runtime_is_refused(artifact: Path, tmp_path: Path) -> None:
    failed = tmp_path / artifact.name
    failed.write_bytes(artifact.read_bytes())
    rewrite_onnx_metadata(failed, {**read_metadata(artifact), "status": "failed: accuracy drop of 9 points"})
    with pytest.raises(ConfigError, match=r"failed its quality gate .* --allow_failed"):
        load_servable(failed)
    assert load_servable(failed, allow_failed=True).format == "onnx"
    with pytest.raises(ConfigError, match=r"onnx artifact and runs on onnxruntime, not torchscript"):
        load_servable(artifact, runtime="torchscript")


def test_emit_deploy_writes_an_image_and_manifests_kubernetes_accepts(artifact: Path, tmp_path: Path) -> None:
    import shlex

    import yaml
    from kubernetes.client import ApiClient

    from export.serve.cli import build_parser, run_serve_command

    out = tmp_path / "deploy"
    run_serve_command([str(artifact), "--emit-deploy", str(out), "--grace_s", "20", "--api_key_env", "ZOO_KEY",
                       "--workers", "2", "--image", "registry.example/zoo:1"])  # fmt: skip
    assert (out / artifact.name).read_bytes() == artifact.read_bytes() and (out / "model_card.md").is_file()

    # The client's own decoder of API objects (public deserialize() changed its signature across versions): it
    # builds the typed models and refuses documents that miss required fields.
    decode = ApiClient()._ApiClient__deserialize
    document = yaml.safe_load((out / "k8s/deployment.yaml").read_text())
    deployment = decode(document, "V1Deployment")
    service = decode(yaml.safe_load((out / "k8s/service.yaml").read_text()), "V1Service")
    del document["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(ValueError, match="name"):
        decode(document, "V1Deployment")
    pod = deployment.spec.template.spec
    container = pod.containers[0]
    assert container.image == "registry.example/zoo:1" and deployment.spec.replicas == 2
    assert container.liveness_probe.http_get.path == "/health" and container.readiness_probe.http_get.path == "/ready"
    assert pod.termination_grace_period_seconds >= 20 + 5 and container.security_context.run_as_non_root
    assert container.env[0].name == "ZOO_KEY" and container.env[0].value_from.secret_key_ref.key == "key"
    assert container.resources.requests["cpu"] == "2"
    assert service.spec.selector == deployment.spec.selector.match_labels
    assert service.spec.ports[0].target_port == "http"

    dockerfile = (out / "Dockerfile").read_text()
    assert "USER 10001" in dockerfile and 'pip install "lightning-zoo[serve]"' in dockerfile
    command = json.loads(dockerfile.split("CMD ", 1)[1])
    assert command == container.command and command[:2] == ["zoo", "serve"]
    args = build_parser().parse_args(command[2:])
    assert (args.host, args.port, args.grace_s, args.workers) == ("0.0.0.0", 8000, 20.0, 2)
    assert shlex.quote(str(out / "k8s")) in (out / "DEPLOY.md").read_text()
