"""``zoo serve`` of graph models (concurrent graphs batched as one union) and of a diffusion model (PNGs)."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from export.serve.model import load_servable

pytestmark = pytest.mark.slow

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
MODELS = {"nodes": "node_classifier.ckpt", "graphs": "graph_classifier.ckpt", "diffusion": "diffusion_model.ckpt"}


@pytest.fixture(scope="module")
def servers(start_server) -> dict:
    """zoo 0.1's tiny GCN (Cora), GIN (motifs) and conditional UNet (shapes), started together."""
    started = {name: start_server(LEGACY / file, "--batch_timeout_ms", "50", wait=False)
               for name, file in MODELS.items()}  # fmt: skip
    for server in started.values():
        server.wait_ready()
    return started


def random_graph(seed: int, width: int, binary: bool) -> dict:
    generator = torch.Generator().manual_seed(seed)
    nodes = 5 + seed % 7
    x = (torch.rand(nodes, width, generator=generator) < 0.05).float() if binary else torch.ones(nodes, width)
    edges = torch.randint(0, nodes, (2, 3 * nodes), generator=generator)
    return {"x": x.tolist(), "edge_index": edges.tolist()}


@pytest.mark.parametrize(("name", "width"), [("nodes", 1433), ("graphs", 1)])
def test_concurrent_graphs_are_answered_as_each_alone(servers: dict, name: str, width: int) -> None:
    server, model = servers[name], load_servable(LEGACY / MODELS[name], reference_samples=0)
    graphs = [random_graph(seed, width, binary=name == "nodes") for seed in range(12)]

    def local(graph: dict) -> list[str]:
        x, edges = torch.tensor(graph["x"]), torch.tensor(graph["edge_index"])
        inputs = (x, edges) if name == "nodes" else (x, edges, torch.zeros(len(x), dtype=torch.long))
        return [row[0][0] for row in model.top_labels(model.probabilities(model(*inputs)), 1)]

    before = server.metrics().get("zoo_serve_batch_size_count", 0)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda graph: server.post_json({**graph, "top_k": 1}), graphs))
    for graph, (status, _, answer) in zip(graphs, answers, strict=True):
        assert status == 200 and [row[0]["label"] for row in answer["predictions"]] == local(graph)
        assert len(answer["predictions"]) == (len(graph["x"]) if name == "nodes" else 1)
    assert server.metrics()["zoo_serve_batch_size_count"] - before < 12  # some graphs shared a union

    wrong = {"x": [[0.0] * (width + 1)] * 3, "edge_index": [[0], [1]]}
    assert f"this model takes {width}" in server.post_json(wrong)[2]["error"]
    outside = {"x": [[0.0] * width] * 3, "edge_index": [[0, 1], [1, 7]]}
    status, _, answer = server.post_json(outside)
    assert status == 422 and "node indices run from 0 to 2" in answer["error"]


def test_a_diffusion_model_answers_pngs_of_the_asked_class(servers: dict) -> None:
    server = servers["diffusion"]
    status, _, answer = server.post_json({"num_images": 2, "class_label": "square", "steps": 10, "seed": 4})
    assert status == 200 and answer["class_label"] == [1] and answer["sampler"] == "ddim"
    served = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(png)))) for png in answer["images"]])
    local = load_servable(LEGACY / MODELS["diffusion"], reference_samples=0).sample(2, 4, 10, "ddim", [1])
    assert served.shape == (2, 16, 16, 3)
    assert np.abs(served.astype(int) - local.mul(255).round().permute(0, 2, 3, 1).numpy().astype(int)).max() <= 1
    for payload, reason in [({"class_label": "hexagon"}, "one of ['disc', 'square', 'triangle']"),
                            ({"steps": 1001}, "steps is 1001; it must be from 1 to 1000"),
                            ({"num_images": 17}, "num_images is 17; it must be from 1 to 16")]:  # fmt: skip
        status, _, answer = server.post_json(payload)
        assert status == 422 and reason in answer["error"], answer
