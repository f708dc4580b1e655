"""Node and graph classification with any GNN registered for them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from typing_extensions import override

from zoo.errors import DataError
from zoo.tasks.base import BackboneCall, CompileOption, backbone_attribute
from zoo.tasks.classification import ClassificationTask
from zoo.tasks.signature import GraphInput, InferenceSignature, TensorSpec

__all__ = ["GraphClassifier", "NodeClassifier"]

_MASKS = {"train": "train_mask", "val": "val_mask", "test": "test_mask"}


class _GraphTask(ClassificationTask):
    """Backbone resolution and input checks shared by the node and graph tasks."""

    supports_soft_targets = False  # mixing graphs has no meaning here

    def __init__(
        self,
        backbone: str | nn.Module,
        in_channels: int | None,
        num_classes: int | None,
        backbone_kwargs: dict[str, Any] | None,
        pretrained: bool | str | None,
        **common: Any,
    ) -> None:
        super().__init__(backbone, **common)
        self.backbone = self.resolve_backbone(
            backbone, backbone_kwargs, in_channels=in_channels, num_classes=num_classes, pretrained=pretrained
        )
        purpose = f"a {self.registry_task.replace('_', ' ')} model"
        self.in_channels = backbone_attribute(self.backbone, "in_channels", in_channels, purpose)
        self.num_classes = backbone_attribute(self.backbone, "num_classes", num_classes, purpose)
        self.build_metrics()

    @override
    def check_batch(self, batch: Any, batch_idx: int) -> None:
        """Feature size and edge indices (see :meth:`check_now` for when the indices are read back)."""
        x, edge_index = batch.x, batch.edge_index
        if x.ndim != 2 or x.shape[1] != self.in_channels:
            raise DataError(
                f"{type(self).__name__}: node features of shape {tuple(x.shape)}, but {self.backbone_name!r} expects "
                f"(N, {self.in_channels}) (in_channels={self.in_channels})"
            )
        if edge_index.numel() and self.check_now(edge_index, batch_idx):
            low, high = int(edge_index.min()), int(edge_index.max())
            if low < 0 or high >= x.shape[0]:
                raise DataError(
                    f"{type(self).__name__}: edge_index refers to node {high if high >= x.shape[0] else low}, "
                    f"but the graph has {x.shape[0]} nodes (valid ids 0..{x.shape[0] - 1})"
                )

    def _graph_inputs(self) -> tuple[TensorSpec, TensorSpec]:
        return (
            TensorSpec("x", ("nodes", self.in_channels), "float32", "node features"),
            TensorSpec("edge_index", (2, "edges"), "int64", "source and target node of each edge"),
        )


class _NodeModel(BackboneCall):
    """A node classifier with the fixed argument list ``(x, edge_index)`` that export needs."""

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.backbone(x, edge_index)


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
        pretrained: Start from a weight card of the named backbone: its tag (``"cifar10"``, see ``zoo weights``)
            or ``True`` for the first; another class count keeps a fresh head. Same as ``backbone_kwargs:
            {pretrained: TAG}``.
        label_smoothing, loss, focal_gamma, class_weights, metrics, optimizer, lr_scheduler, lr_scheduler_interval,
            compile, layer_decay: As in ``ImageClassifier``.

    Shapes:
        ``forward``: ``x (N, in_channels)``, ``edge_index (2, E)`` -> ``(N, num_classes)``.
    """

    registry_task = "node_classification"

    def __init__(
        self,
        backbone: str | nn.Module = "gcn",
        in_channels: int | None = None,
        num_classes: int | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        pretrained: bool | str | None = None,
        label_smoothing: float = 0.0,
        loss: Literal["cross_entropy", "focal"] = "cross_entropy",
        focal_gamma: float = 2.0,
        class_weights: Literal["balanced"] | list[float] | None = None,
        metrics: list[str] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: CompileOption = False,
        layer_decay: float | None = None,
    ) -> None:
        super().__init__(
            backbone,
            in_channels,
            num_classes,
            backbone_kwargs,
            pretrained,
            label_smoothing=label_smoothing,
            loss=loss,
            focal_gamma=focal_gamma,
            class_weights=class_weights,
            metrics=metrics,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_scheduler_interval=lr_scheduler_interval,
            compile=compile,
            layer_decay=layer_decay,
        )

    @override
    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels)``, ``(2, E)`` -> ``(N, num_classes)`` logits."""
        return self.backbone(x, edge_index)

    @override
    def logits_and_targets(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch.x, batch.edge_index)
        if hasattr(batch, "batch_size") and not hasattr(batch, _MASKS[stage]):  # NeighborLoader: seeds first
            return logits[: batch.batch_size], batch.y[: batch.batch_size]
        mask = getattr(batch, _MASKS[stage])
        return logits[mask], batch.y[mask]

    @override
    def check_batch(self, batch: Any, batch_idx: int) -> None:
        super().check_batch(batch, batch_idx)
        if hasattr(batch, "train_mask") and batch.train_mask.device.type == "cpu" and not bool(batch.train_mask.any()):
            raise DataError(f"{type(self).__name__}: the split's train_mask selects no node")

    @override
    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities of every node ``(N, num_classes)``."""
        return self.probabilities(self(batch.x, batch.edge_index))

    @override
    def count_samples(self, batch: Any) -> int | torch.Tensor:
        """Labelled training nodes of a full graph, or the seed nodes of a neighbour-sampled subgraph.

        A full graph's count stays a device tensor, read once after training.
        """
        if hasattr(batch, "train_mask"):
            return batch.train_mask.sum()
        return int(batch.batch_size)

    @override
    def inference_signature(self) -> InferenceSignature:
        return InferenceSignature(
            task=self.registry_task,
            inputs=self._graph_inputs(),
            outputs=(self._classifier_output("nodes"),),
            preprocessing=GraphInput(self.in_channels),
            labels=self.labels(),
            example_sizes={"nodes": 12, "edges": 40},
            check_sizes=({"nodes": 7, "edges": 15}, {"nodes": 30, "edges": 120}),
        )

    @override
    def inference_module(self) -> nn.Module:
        return _NodeModel(self.backbone)

    @override
    def example_inputs(self, sizes: Mapping[str, int], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        x = torch.randn(sizes["nodes"], self.in_channels, generator=generator)
        return x, torch.randint(0, sizes["nodes"], (2, sizes["edges"]), generator=generator)


class _GraphModel(BackboneCall):
    """A graph classifier with the fixed argument list ``(x, edge_index, batch)`` that export needs."""

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        return self.backbone(x, edge_index, batch)


class GraphClassifier(_GraphTask):
    """Classify whole graphs: node states pooled into one vector per graph, then classified.

    Batches are PyG ``Batch`` objects (several graphs with a ``batch`` vector of graph ids) with one label per
    graph in ``y``, as ``zoo.data.MotifGraphsDataModule`` and ``zoo.data.TUDataModule`` make them.

    Args:
        backbone: Registry name of a graph model (``"gin"``) or a module taking ``(x, edge_index, batch)``.
        in_channels, num_classes, backbone_kwargs, pretrained, label_smoothing, loss, focal_gamma, class_weights,
            metrics, optimizer, lr_scheduler, lr_scheduler_interval, compile, layer_decay: As in
            :class:`NodeClassifier`.

    Shapes:
        ``forward``: ``x (N, in_channels)``, ``edge_index (2, E)``, ``batch (N,)`` -> ``(G, num_classes)``.
    """

    registry_task = "graph_classification"

    def __init__(
        self,
        backbone: str | nn.Module = "gin",
        in_channels: int | None = None,
        num_classes: int | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        pretrained: bool | str | None = None,
        label_smoothing: float = 0.0,
        loss: Literal["cross_entropy", "focal"] = "cross_entropy",
        focal_gamma: float = 2.0,
        class_weights: Literal["balanced"] | list[float] | None = None,
        metrics: list[str] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: CompileOption = False,
        layer_decay: float | None = None,
    ) -> None:
        super().__init__(
            backbone,
            in_channels,
            num_classes,
            backbone_kwargs,
            pretrained,
            label_smoothing=label_smoothing,
            loss=loss,
            focal_gamma=focal_gamma,
            class_weights=class_weights,
            metrics=metrics,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_scheduler_interval=lr_scheduler_interval,
            compile=compile,
            layer_decay=layer_decay,
        )

    @override
    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Node features, edges and graph ids -> ``(G, num_classes)`` logits."""
        return self.backbone(x, edge_index, batch)

    @override
    def logits_and_targets(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self(batch.x, batch.edge_index, batch.batch), batch.y

    @override
    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities per graph ``(G, num_classes)``."""
        return self.probabilities(self(batch.x, batch.edge_index, batch.batch))

    @override
    def count_samples(self, batch: Any) -> int:
        """Graphs in the batch."""
        return int(batch.num_graphs)

    @override
    def inference_signature(self) -> InferenceSignature:
        return InferenceSignature(
            task=self.registry_task,
            inputs=(*self._graph_inputs(), TensorSpec("batch", ("nodes",), "int64", "graph of each node, sorted")),
            outputs=(self._classifier_output("graphs"),),
            preprocessing=GraphInput(self.in_channels),
            labels=self.labels(),
            example_sizes={"nodes": 20, "edges": 60, "graphs": 3},
            check_sizes=({"nodes": 9, "edges": 30, "graphs": 1}, {"nodes": 40, "edges": 150, "graphs": 5}),
        )

    @override
    def inference_module(self) -> nn.Module:
        return _GraphModel(self.backbone)

    @override
    def example_inputs(self, sizes: Mapping[str, int], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        nodes, graphs = sizes["nodes"], sizes["graphs"]
        batch = torch.sort(torch.randint(0, graphs, (nodes,), generator=generator)).values
        batch[:graphs] = torch.arange(graphs)  # every graph has a node
        batch = torch.sort(batch).values
        edge_index = torch.randint(0, nodes, (2, sizes["edges"]), generator=generator)
        edge_index = edge_index[:, batch[edge_index[0]] == batch[edge_index[1]]]  # edges stay inside graphs
        return torch.randn(nodes, self.in_channels, generator=generator), edge_index, batch
