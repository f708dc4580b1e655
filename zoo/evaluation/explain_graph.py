"""Why a node classifier labelled a node: the edges and features that mattered (PyG's explain module).

PyG's ``Explainer`` with Captum's Integrated Gradients (``CaptumExplainer``) or GNNExplainer (Ying et al.,
2019) scores every edge (how much the prediction depends on it) and every input feature of every node. The
drawing keeps the node's most important edges, with the nodes they join coloured by their predicted class and
the explained node ringed, so a user sees the neighbourhood the model read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from zoo.errors import UsageError

__all__ = ["ALGORITHMS", "explain_node", "write_node_explanation"]

ALGORITHMS = ("integrated_gradients", "gnnexplainer")


def explain_node(
    task: Any, graph: Any, node: int, algorithm: str = "integrated_gradients", top_edges: int = 20
) -> dict[str, Any]:
    """Edge and feature importances for ``node`` of ``graph`` (``x (N, F)``, ``edge_index (2, E)``).

    Returns:
        ``node``, ``predicted``, ``probabilities`` (top 5), ``edges`` (the ``top_edges`` most important as
        ``[source, target, importance]``) and ``features`` (the node's 10 most important feature indices).

    Raises:
        UsageError: For a node outside the graph or an unknown algorithm.
    """
    from torch_geometric.explain import Explainer, GNNExplainer
    from torch_geometric.explain.algorithm import CaptumExplainer

    if not 0 <= node < graph.num_nodes:
        raise UsageError(f"--node {node}: the graph has nodes 0 to {graph.num_nodes - 1}")
    if algorithm not in ALGORITHMS:
        raise UsageError(f"--algorithm {algorithm!r}: choose one of {', '.join(ALGORITHMS)}")
    model = task.inference_module().eval()
    method = CaptumExplainer("IntegratedGradients") if algorithm == "integrated_gradients" else GNNExplainer(epochs=100)
    explainer = Explainer(
        model=model, algorithm=method, explanation_type="model", node_mask_type="attributes",
        edge_mask_type="object",
        model_config={"mode": "multiclass_classification", "task_level": "node", "return_type": "raw"},
    )  # fmt: skip
    with torch.inference_mode(False), torch.enable_grad():
        explanation = explainer(graph.x, graph.edge_index, index=node)
        logits = model(graph.x, graph.edge_index).detach()
    probabilities = logits[node].softmax(-1)
    edge_mask = explanation.edge_mask.detach()
    keep = edge_mask.argsort(descending=True)[:top_edges]
    keep = keep[edge_mask[keep] > 0]
    names = task.labels() or [str(c) for c in range(probabilities.numel())]
    features = explanation.node_mask.detach()[node].abs()
    return {
        "node": node,
        "algorithm": algorithm,
        "predicted": names[int(probabilities.argmax())],
        "true": None if getattr(graph, "y", None) is None else names[int(graph.y[node])],
        "probabilities": [
            (names[int(c)], round(float(probabilities[c]), 6)) for c in probabilities.argsort(descending=True)[:5]
        ],
        "edges": [
            [int(graph.edge_index[0, e]), int(graph.edge_index[1, e]), round(float(edge_mask[e]), 6)] for e in keep
        ],
        "features": [int(f) for f in features.argsort(descending=True)[:10]],
        "classes": {int(n): names[int(logits[n].argmax())] for e in keep for n in graph.edge_index[:, e].tolist()},
    }


def write_node_explanation(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """The important neighbourhood as a PNG (networkx), and the figures as JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    out.mkdir(parents=True, exist_ok=True)
    name = f"node{result['node']}.{result['algorithm']}"
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    graph = nx.Graph()
    graph.add_node(result["node"])
    top = max((w for _, _, w in result["edges"]), default=1.0) or 1.0
    for source, target, weight in result["edges"]:
        graph.add_edge(source, target, weight=weight / top)
    classes = sorted({result["classes"].get(n, result["predicted"]) for n in graph.nodes})
    palette = matplotlib.colormaps["tab10"]
    colours = [palette(classes.index(result["classes"].get(n, result["predicted"])) % 10) for n in graph.nodes]
    figure, axes = plt.subplots(figsize=(6, 5))
    layout = nx.spring_layout(graph, seed=0)
    nx.draw_networkx_edges(graph, layout, ax=axes, width=[1 + 4 * graph[u][v]["weight"] for u, v in graph.edges],
                           alpha=0.7)  # fmt: skip
    nx.draw_networkx_nodes(graph, layout, ax=axes, node_color=colours, node_size=180,
                           edgecolors=["black" if n == result["node"] else "none" for n in graph.nodes],
                           linewidths=2.5)  # fmt: skip
    nx.draw_networkx_labels(graph, layout, ax=axes, font_size=7)
    for index, label in enumerate(classes):
        axes.scatter([], [], color=palette(index % 10), label=label)
    axes.legend(fontsize=7, loc="best", title="predicted class")
    axes.set_title(f"node {result['node']}: predicted {result['predicted']} (true {result['true']}), "
                   f"{len(result['edges'])} most important edges", fontsize=9)  # fmt: skip
    axes.axis("off")
    picture = out / f"{name}.png"
    figure.savefig(picture, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return picture, out / f"{name}.json"
