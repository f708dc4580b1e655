"""Cora GCN or GAT as PyTorch Geometric's own example loop trains them (``examples/gcn.py``, ``examples/gat.py``).

    python benchmarks/plain/pyg_planetoid.py --model gcn --data ~/.cache/zoo/planetoid-copy

The hand-written side of ``benchmarks/side_by_side.py --process``: no zoo and no Lightning, only what a PyG user
writes. It trains with the hyper-parameters and model selection of ``recipes/cora/gcn.yaml`` and ``gat.yaml``
(the epoch with the lowest validation loss is kept in memory and tested), so both sides do the same work. As in
PyG's examples, features are row-normalised and ``GCNConv`` caches its normalised adjacency; unlike them, the
weight decay applies to every layer, as in the recipes. Prints one JSON line: test accuracy and seconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

STARTED = time.perf_counter()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch_geometric.transforms as T  # noqa: E402
from torch_geometric.datasets import Planetoid  # noqa: E402
from torch_geometric.nn import GATConv, GCNConv  # noqa: E402

SETTINGS = {"gcn": {"epochs": 200, "lr": 0.01}, "gat": {"epochs": 300, "lr": 0.005}}


class GCN(torch.nn.Module):
    """PyG's example GCN: two ``GCNConv`` layers with a cached normalised adjacency."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = GCNConv(in_channels, hidden, cached=True)
        self.conv2 = GCNConv(hidden, out_channels, cached=True)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """``(N, F)``, ``(2, E)`` -> ``(N, classes)``."""
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, p=0.5, training=self.training)
        return self.conv2(x, edge_index)


class GAT(torch.nn.Module):
    """PyG's example GAT: eight heads of eight features, then one averaged output head."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, heads: int = 8) -> None:
        super().__init__()
        self.conv1 = GATConv(in_channels, hidden, heads, dropout=0.6)
        self.conv2 = GATConv(hidden * heads, out_channels, heads=1, concat=False, dropout=0.6)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """``(N, F)``, ``(2, E)`` -> ``(N, classes)``."""
        x = F.dropout(x, p=0.6, training=self.training)
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, p=0.6, training=self.training)
        return self.conv2(x, edge_index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(SETTINGS), default="gcn")
    parser.add_argument("--data", required=True, help="a writable folder holding Cora/raw (PyG processes it there)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's (200 for GCN, 300 for GAT)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    dataset = Planetoid(args.data, "Cora", transform=T.NormalizeFeatures())
    data = dataset[0]
    model = (GCN(dataset.num_features, 16, dataset.num_classes) if args.model == "gcn"
             else GAT(dataset.num_features, 8, dataset.num_classes))  # fmt: skip
    settings = SETTINGS[args.model]
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"], weight_decay=5e-4)
    best_loss, best_state = float("inf"), None
    for _ in range(args.epochs or settings["epochs"]):
        model.train()
        optimizer.zero_grad()
        out = model(data.x, data.edge_index)
        F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            out = model(data.x, data.edge_index)
            val_loss = float(F.cross_entropy(out[data.val_mask], data.y[data.val_mask]))
        if val_loss < best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        pred = model(data.x, data.edge_index).argmax(dim=-1)
    accuracy = float((pred[data.test_mask] == data.y[data.test_mask]).float().mean())
    print(json.dumps({"model": args.model, "test_acc1": round(accuracy, 4),
                      "seconds": round(time.perf_counter() - STARTED, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
