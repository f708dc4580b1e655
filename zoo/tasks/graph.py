"""Node and graph classification with any GNN registered for them."""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from zoo.registry import create_model
from zoo.tasks.backbones import entry_for_task, save_task_hyperparameters
from zoo.tasks.classification import _ClassificationTask

__all__ = ["GraphClassifier", "NodeClassifier"]

_MASKS = {"train": "train_mask", "val": "val_mask", "test": "test_mask"}


class _GraphTask(_ClassificationTask):
    """Backbone resolution and input checks shared by the node and graph tasks."""

    supports_soft_targets = False  # mixing graphs has no meaning here
    _task: str

    def _build(
        self, backbone: str | nn.Module, in_channels: int | None, num_classes: int | None, kwargs: dict[str, Any] | None
    ) -> None:
        if isinstance(backbone, str):
            entry = entry_for_task(backbone, self._task)
            overrides = dict(kwargs or {})
            overrides["in_channels"] = in_channels or entry.defaults["in_channels"]
            overrides["num_classes"] = num_classes or entry.defaults["num_classes"]
            backbone = create_model(backbone, **overrides)
        elif kwargs:
            raise ValueError("backbone_kwargs apply to a backbone given by name, not to an nn.Module")
        for name, wanted in (("in_channels", in_channels), ("num_classes", num_classes)):
            own = getattr(backbone, name, None)
            if own is None:
                raise ValueError(f"{type(backbone).__name__} needs a {name} attribute")
            if wanted is not None and own != wanted:
                raise ValueError(f"backbone has {name}={own} but the task has {name}={wanted}")
        self.backbone = backbone
        self.in_channels, self.num_classes = int(backbone.in_channels), int(backbone.num_classes)

    def _check_batch(self, batch: Any, batch_idx: int) -> None:
        """Feature size and edge indices, checked on every CPU batch and once per epoch on an accelerator."""
        x, edge_index = batch.x, batch.edge_index
        if x.ndim != 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}: node features of shape {tuple(x.shape)}, but {self.backbone_name!r} expects "
                f"(N, {self.in_channels}) (in_channels={self.in_channels})"
            )
        if edge_index.numel() and (edge_index.device.type == "cpu" or batch_idx == 0):
            low, high = int(edge_index.min()), int(edge_index.max())
            if low < 0 or high >= x.shape[0]:
                raise ValueError(
                    f"{type(self).__name__}: edge_index refers to node {high if high >= x.shape[0] else low}, "
                    f"but the graph has {x.shape[0]} nodes (valid ids 0..{x.shape[0] - 1})"
                )


class NodeClassifier(_GraphTask):
    """Classify the nodes of a graph (Planetoid citation networks and the like).

    Two kinds of batch, both PyG ``Data``:

    * the full graph with ``train_mask``, ``val_mask`` and ``test_mask``: each stage's loss and metrics use its
      mask's nodes (``zoo.data.PlanetoidDataModule(loader="full")``);
    * a ``NeighborLoader`` subgraph whose first ``batch_size`` nodes are the seed nodes of the stage's split
      (``loader="neighbor"``), for graphs too large for one batch.

    Args:
        backbone: Registry name of a node model (``"gcn"``, ``"gat"``, ``"graphsage"``, ``"graph_transformer"``)
            or a module taking ``(x, edge_index)`` with ``in_channels`` and ``num_classes`` attributes.
        in_channels: Node feature size; linked from the data module.
        num_classes: Output classes; linked from the data module.
        backbone_kwargs: Extra builder arguments (``hidden_channels``, ``dropout``, ...).
        label_smoothing, optimizer, lr_scheduler, lr_scheduler_interval, compile, layer_decay: As in
            ``ImageClassifier``.

    Shapes:
        ``forward``: ``x (N, in_channels)``, ``edge_index (2, E)`` -> ``(N, num_classes)``.
    """

    _task = "node_classification"

    def __init__(
        self,
        backbone: str | nn.Module = "gcn",
        in_channels: int | None = None,
        num_classes: int | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: bool = False,
        layer_decay: float | None = None,
    ) -> None:
        super().__init__()
        self.backbone_name = save_task_hyperparameters(self, backbone)
        self._build(backbone, in_channels, num_classes, backbone_kwargs)
        self._setup_classification(
            label_smoothing, optimizer, lr_scheduler, lr_scheduler_interval, compile, layer_decay
        )

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels)``, ``(2, E)`` -> ``(N, num_classes)`` logits."""
        return self.backbone(x, edge_index)

    def _logits_and_targets(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch.x, batch.edge_index)
        if hasattr(batch, "batch_size") and not hasattr(batch, _MASKS[stage]):  # NeighborLoader: seeds first
            return logits[: batch.batch_size], batch.y[: batch.batch_size]
        mask = getattr(batch, _MASKS[stage])
        return logits[mask], batch.y[mask]

    def _check_batch(self, batch: Any, batch_idx: int) -> None:
        super()._check_batch(batch, batch_idx)
        if hasattr(batch, "train_mask") and batch.train_mask.device.type == "cpu" and not bool(batch.train_mask.any()):
            raise ValueError(f"{type(self).__name__}: the split's train_mask selects no node")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities of every node ``(N, num_classes)``."""
        return self(batch.x, batch.edge_index).softmax(dim=-1)


class GraphClassifier(_GraphTask):
    """Classify whole graphs: node states pooled into one vector per graph, then classified.

    Batches are PyG ``Batch`` objects (several graphs with a ``batch`` vector of graph ids) with one label per
    graph in ``y``, as ``zoo.data.MotifGraphsDataModule`` and ``zoo.data.TUDataModule`` make them.

    Args:
        backbone: Registry name of a graph model (``"gin"``) or a module taking ``(x, edge_index, batch)``.
        in_channels, num_classes, backbone_kwargs, label_smoothing, optimizer, lr_scheduler,
            lr_scheduler_interval, compile, layer_decay: As in :class:`NodeClassifier`.

    Shapes:
        ``forward``: ``x (N, in_channels)``, ``edge_index (2, E)``, ``batch (N,)`` -> ``(G, num_classes)``.
    """

    _task = "graph_classification"

    def __init__(
        self,
        backbone: str | nn.Module = "gin",
        in_channels: int | None = None,
        num_classes: int | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: bool = False,
        layer_decay: float | None = None,
    ) -> None:
        super().__init__()
        self.backbone_name = save_task_hyperparameters(self, backbone)
        self._build(backbone, in_channels, num_classes, backbone_kwargs)
        self._setup_classification(
            label_smoothing, optimizer, lr_scheduler, lr_scheduler_interval, compile, layer_decay
        )

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Node features, edges and graph ids -> ``(G, num_classes)`` logits."""
        return self.backbone(x, edge_index, batch)

    def _logits_and_targets(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self(batch.x, batch.edge_index, batch.batch), batch.y

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities per graph ``(G, num_classes)``."""
        return self(batch.x, batch.edge_index, batch.batch).softmax(dim=-1)
