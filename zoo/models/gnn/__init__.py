"""GNN family: node and graph classifiers on PyTorch Geometric layers.

This module registers the models and imports only torch; PyTorch Geometric is imported when one is built
(:mod:`zoo.models.gnn.networks`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.registry import InputSpec, register_model

if TYPE_CHECKING:
    from torch import nn

_NODE = {
    "family": "gnn",
    "tasks": ("node_classification",),
    "input_spec": InputSpec((1433,)),  # per-node features (Cora)
    "defaults": {"in_channels": 1433, "num_classes": 7},
}
_GRAPH = {
    "family": "gnn",
    "tasks": ("graph_classification",),
    "input_spec": InputSpec((1,)),  # per-node features (the generated motif graphs)
    "defaults": {"in_channels": 1, "num_classes": 3},
}


def _build(name: str, **kwargs: Any) -> nn.Module:
    from zoo.models.gnn import networks

    return getattr(networks, name)(**kwargs)


@register_model(**_NODE, recipe="recipes/cora/gcn.yaml")
def gcn(**kwargs: Any) -> nn.Module:
    """Graph convolutional network, 2 layers, 16 hidden (Kipf and Welling)."""
    return _build("GCN", **kwargs)


@register_model(**_NODE, recipe="recipes/cora/gat.yaml")
def gat(**kwargs: Any) -> nn.Module:
    """Graph attention network, 8 heads of 8 then 1 output head (Velickovic et al.)."""
    return _build("GAT", **kwargs)


@register_model(**_NODE, recipe="recipes/cora/sage.yaml")
def graphsage(**kwargs: Any) -> nn.Module:
    """GraphSAGE with mean aggregation, 2 layers, 64 hidden (Hamilton et al.)."""
    return _build("GraphSAGE", **kwargs)


@register_model(**_NODE)
def graph_transformer(**kwargs: Any) -> nn.Module:
    """Graph transformer: TransformerConv attention over neighbours, 4 heads, gated skips (Shi et al.)."""
    return _build("GraphTransformer", **kwargs)


@register_model(**_GRAPH, recipe="recipes/motifs/gin.yaml")
def gin(**kwargs: Any) -> nn.Module:
    """Graph isomorphism network, 4 layers, sum pooling of every layer (Xu et al.)."""
    return _build("GIN", **kwargs)
