"""Graph neural networks on PyTorch Geometric's message-passing layers.

Node models map node features and edges to per-node logits; graph models pool node states into one vector per
graph. All take the same arguments, so tasks and tests treat them alike.

Shapes:
    ``x (N, in_channels)``, ``edge_index (2, E)`` with values in ``[0, N)``, optional ``batch (N,)`` graph ids
    -> node models ``(N, num_classes)``, graph models ``(G, num_classes)`` with ``G = batch.max() + 1``.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv, GINConv, SAGEConv, TransformerConv, global_add_pool

from zoo.models.gnn.caching import GraphCachingGCNConv
from zoo.models.gnn.dropout import FeatureDropout
from zoo.models.gnn.memo import tracing_or_exporting

__all__ = ["GAT", "GCN", "GIN", "GraphSAGE", "GraphTransformer"]


class _NodeModel(nn.Module):
    """Shared surface of the node models: sizes, and the classifier as the last layer."""

    in_channels: int
    num_classes: int
    convs: nn.ModuleList

    def get_classifier(self) -> nn.Module:
        """The last message-passing layer, which maps to class logits."""
        return self.convs[-1]


class _ConvStack(_NodeModel):
    """``num_layers`` message-passing layers of one kind, each fed dropout of its input, ReLU in between."""

    def __init__(
        self,
        conv: type[nn.Module],
        in_channels: int,
        num_classes: int,
        hidden_channels: int,
        num_layers: int,
        dropout: float,
        sparse_input: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes, self.dropout = in_channels, num_classes, dropout
        self.input_dropout = FeatureDropout(dropout, sparse_output=sparse_input)
        sizes = [in_channels] + [hidden_channels] * (num_layers - 1) + [num_classes]
        self.convs = nn.ModuleList(conv(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, in_channels)``, ``(2, E)`` -> ``(N, num_classes)``."""
        for i, conv in enumerate(self.convs):
            x = conv(self.input_dropout(x) if i == 0 else F.dropout(x, self.dropout, self.training), edge_index)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x


class GCN(_ConvStack):
    """Graph convolutional network (Kipf and Welling, ICLR 2017).

    Each layer computes ``H' = D^-1/2 (A + I) D^-1/2 H W`` (PyG's ``GCNConv``), with ReLU and dropout between
    layers and dropout on the input features, as in the paper.

    Args:
        in_channels: Node feature size.
        num_classes: Output classes.
        hidden_channels: Width of the hidden layers (16 in the paper).
        num_layers: Number of ``GCNConv`` layers.
        dropout: Dropout on the input of every layer.
    """

    def __init__(
        self, in_channels: int, num_classes: int, hidden_channels: int = 16, num_layers: int = 2, dropout: float = 0.5
    ) -> None:
        super().__init__(
            GraphCachingGCNConv, in_channels, num_classes, hidden_channels, num_layers, dropout, sparse_input=True
        )


class GAT(_NodeModel):
    """Graph attention network (Velickovic et al., ICLR 2018).

    Hidden layers concatenate ``heads`` attention heads (PyG's ``GATConv``) followed by ELU; the output layer
    averages ``out_heads`` heads. Dropout applies to every layer's input and to the attention coefficients.

    Args:
        in_channels: Node feature size.
        num_classes: Output classes.
        hidden_channels: Features per head in hidden layers (8 in the paper).
        heads: Heads of the hidden layers (8 in the paper).
        out_heads: Heads of the output layer (1 for Cora in the paper).
        num_layers: Number of attention layers.
        dropout: Dropout on layer inputs and attention coefficients (0.6 in the paper).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        hidden_channels: int = 8,
        heads: int = 8,
        out_heads: int = 1,
        num_layers: int = 2,
        dropout: float = 0.6,
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes, self.dropout = in_channels, num_classes, dropout
        layers = []
        width = in_channels
        for _ in range(num_layers - 1):
            layers.append(GATConv(width, hidden_channels, heads=heads, dropout=dropout))
            width = hidden_channels * heads
        layers.append(GATConv(width, num_classes, heads=out_heads, concat=False, dropout=dropout))
        self.convs = nn.ModuleList(layers)
        self.input_dropout = FeatureDropout(dropout, sparse_output=True)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, in_channels)``, ``(2, E)`` -> ``(N, num_classes)``."""
        for i, conv in enumerate(self.convs):
            x = conv(self.input_dropout(x) if i == 0 else F.dropout(x, self.dropout, self.training), edge_index)
            if i < len(self.convs) - 1:
                x = F.elu(x)
        return x


class GraphSAGE(_ConvStack):
    """GraphSAGE with mean aggregation (Hamilton et al., NeurIPS 2017), PyG's ``SAGEConv``.

    Each layer combines a node's state with the mean of its neighbours' (``W1 h_v + W2 mean_u h_u``); ReLU and
    dropout between layers. It suits neighbour-sampled mini-batches (``NeighborLoader``).

    Args:
        in_channels: Node feature size.
        num_classes: Output classes.
        hidden_channels: Width of hidden layers.
        num_layers: Number of ``SAGEConv`` layers.
        dropout: Dropout on the input of every layer.
    """

    def __init__(
        self, in_channels: int, num_classes: int, hidden_channels: int = 64, num_layers: int = 2, dropout: float = 0.5
    ) -> None:
        super().__init__(SAGEConv, in_channels, num_classes, hidden_channels, num_layers, dropout)


class GraphTransformer(_NodeModel):
    """Graph transformer: multi-head dot-product attention over each node's neighbours (Shi et al., IJCAI 2021).

    PyG's ``TransformerConv`` with a gated skip connection (``beta=True``) per layer, LayerNorm and GELU between
    layers; attention is restricted to the graph's edges, so it scales with ``E`` rather than ``N^2``.

    Args:
        in_channels: Node feature size.
        num_classes: Output classes.
        hidden_channels: Features per head.
        heads: Attention heads (concatenated in hidden layers, averaged in the last).
        num_layers: Number of attention layers.
        dropout: Dropout on layer inputs and attention coefficients.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        hidden_channels: int = 16,
        heads: int = 4,
        num_layers: int = 2,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes, self.dropout = in_channels, num_classes, dropout
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        width = in_channels
        for _ in range(num_layers - 1):
            self.convs.append(TransformerConv(width, hidden_channels, heads=heads, beta=True, dropout=dropout))
            width = hidden_channels * heads
            self.norms.append(nn.LayerNorm(width))
        self.convs.append(TransformerConv(width, num_classes, heads=heads, concat=False, beta=True, dropout=dropout))
        self.input_dropout = FeatureDropout(dropout)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, in_channels)``, ``(2, E)`` -> ``(N, num_classes)``."""
        x = self.input_dropout(x)
        for conv, norm in zip(self.convs[:-1], self.norms, strict=True):
            x = F.dropout(F.gelu(norm(conv(x, edge_index))), self.dropout, self.training)
        return self.convs[-1](x, edge_index)


class GIN(nn.Module):
    """Graph isomorphism network for graph classification (Xu et al., ICLR 2019).

    Each layer updates ``h_v = MLP((1 + eps) h_v + sum_u h_u)`` (PyG's ``GINConv``, trainable ``eps``), as
    expressive as the 1-WL test; the graph representation concatenates the sum-pooled states of every layer
    (the paper's readout), followed by an MLP classifier.

    Args:
        in_channels: Node feature size.
        num_classes: Output classes.
        hidden_channels: Width of every layer.
        num_layers: Number of ``GINConv`` layers.
        dropout: Dropout before the classifier.
    """

    def __init__(
        self, in_channels: int, num_classes: int, hidden_channels: int = 64, num_layers: int = 4, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes, self.dropout = in_channels, num_classes, dropout
        self.convs = nn.ModuleList()
        width = in_channels
        for _ in range(num_layers):
            mlp = nn.Sequential(
                nn.Linear(width, hidden_channels),
                nn.BatchNorm1d(hidden_channels),
                nn.ReLU(),
                nn.Linear(hidden_channels, hidden_channels),
                nn.ReLU(),
            )
            self.convs.append(GINConv(mlp, train_eps=True))
            width = hidden_channels
        self.head = nn.Sequential(
            nn.Linear(hidden_channels * num_layers, hidden_channels), nn.ReLU(), nn.Linear(hidden_channels, num_classes)
        )

    def get_classifier(self) -> nn.Module:
        """The MLP on the pooled graph representation."""
        return self.head

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, in_channels)``, ``(2, E)``, ``(N,)`` -> ``(G, num_classes)``."""
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        pooled = []
        for conv in self.convs:
            x = conv(x, edge_index)
            pooled.append(_sum_per_graph(x, batch))
        return self.head(F.dropout(torch.cat(pooled, dim=-1), self.dropout, self.training))


def _sum_per_graph(x: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """Sum pooling ``(N, C)`` -> ``(G, C)`` with ``G = batch.max() + 1``.

    Training uses PyG's scatter (``global_add_pool``). Its graph count is read into a Python int, which a
    TorchScript trace would freeze and ``torch.export`` cannot follow, so when tracing or exporting the sum is
    a membership-matrix product whose size stays a tensor: ``(G, N) @ (N, C)``.
    """
    if not tracing_or_exporting():
        return global_add_pool(x, batch)
    graphs = torch.arange(batch.max() + 1, device=batch.device)
    return (graphs.unsqueeze(1) == batch.unsqueeze(0)).to(x.dtype) @ x
