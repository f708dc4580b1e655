"""Classification tasks: thin LightningModules around an image backbone or a text encoder."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from zoo.registry import create_model
from zoo.tasks.backbones import entry_for_task, save_task_hyperparameters
from zoo.tasks.optimization import task_optimization_config

__all__ = ["ImageClassifier", "TextClassifier"]


class _ClassificationTask(L.LightningModule):
    """Step logic, metrics and optimisation shared by the classification tasks.

    Subclasses build ``self.backbone``, call :meth:`_setup_classification`, and define the logits and targets of
    a batch for a stage (:meth:`_logits_and_targets`) and what a well-formed batch is (:meth:`_check_batch`).
    """

    supports_soft_targets = True
    default_monitor = ("val/acc1", "max")

    def _setup_classification(
        self,
        label_smoothing: float,
        optimizer: OptimizerCallable,
        lr_scheduler: LRSchedulerCallable | None,
        lr_scheduler_interval: str,
        compile: bool,
        layer_decay: float | None,
    ) -> None:
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if layer_decay is not None and not 0 < layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
        if lr_scheduler_interval not in ("step", "epoch"):
            raise ValueError(f"lr_scheduler_interval must be 'step' or 'epoch', got {lr_scheduler_interval!r}")
        if layer_decay is not None and not hasattr(self.backbone, "group_matcher"):
            raise ValueError(
                f"layer_decay needs a backbone that splits into layers (timm's group_matcher); "
                f"{self.backbone_name!r} has none"
            )
        self.label_smoothing = label_smoothing
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.lr_scheduler_interval = lr_scheduler_interval
        self.compile_backbone = compile
        self.layer_decay = layer_decay
        self._configured = False
        self.train_batch_transforms: list[Callable[[Any], Any]] = []
        top_k = {"acc1": 1, "acc5": 5} if self.num_classes > 5 else {"acc1": 1}
        eval_metrics = MetricCollection(
            {name: MulticlassAccuracy(self.num_classes, top_k=k, average="micro") for name, k in top_k.items()}
        )
        self.train_metrics = MetricCollection(
            {"acc1": MulticlassAccuracy(self.num_classes, average="micro")}, prefix="train/"
        )
        # An epoch's training accuracy accumulates over its batches; keeping the running counts in the
        # checkpoint lets a run resumed mid-epoch report the same epoch value as an uninterrupted one.
        self.train_metrics.persistent(True)
        self.val_metrics = eval_metrics.clone(prefix="val/")
        self.test_metrics = eval_metrics.clone(prefix="test/")

    def configure_model(self) -> None:
        """Compile once, on the device the trainer chose."""
        if self._configured:
            return
        self._configured = True
        if self.compile_backbone:
            self.backbone.compile()

    def on_fit_start(self) -> None:
        """Recreate evaluation-metric states, which a ``validate``/``test`` run before ``fit`` made read-only.

        Metric states created under ``torch.inference_mode`` cannot be updated in place outside it, as the
        validation loop inside ``fit`` does. (Training metrics are not reset: they may hold a resumed epoch.)
        """
        self.val_metrics.reset()
        self.test_metrics.reset()

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy; ``targets`` are ``(B,)`` indices (label-smoothed) or ``(B, C)`` probabilities.

        Probability targets are used as given: whoever made them (e.g. mixup) already applied the smoothing.
        """
        smoothing = 0.0 if targets.is_floating_point() else self.label_smoothing
        return F.cross_entropy(logits, targets, label_smoothing=smoothing)

    def _logits_and_targets(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, C)`` and targets ``(B,)`` or ``(B, C)`` of a batch in ``stage`` (train, val, test)."""
        raise NotImplementedError

    def _check_batch(self, batch: Any, batch_idx: int) -> None:
        """Reject malformed batches with a message that names the problem."""

    def _check_labels(self, targets: torch.Tensor, batch_size: int, batch_idx: int) -> None:
        """Label ranges are checked on every CPU batch, and once per epoch on an accelerator (no sync per step)."""
        if targets.is_floating_point():
            if targets.shape != (batch_size, self.num_classes):
                raise ValueError(
                    f"{type(self).__name__}: soft targets of shape {tuple(targets.shape)}, expected "
                    f"({batch_size}, {self.num_classes})"
                )
        elif targets.numel() and (targets.device.type == "cpu" or batch_idx == 0):
            low, high = int(targets.min()), int(targets.max())
            if low < 0 or high >= self.num_classes:
                bad = low if low < 0 else high
                raise ValueError(
                    f"{type(self).__name__}: label {bad} is outside [0, num_classes={self.num_classes}); "
                    "check the data's labels or the model's num_classes"
                )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self._check_batch(batch, batch_idx)
        for transform in self.train_batch_transforms:
            batch = transform(batch)
        logits, targets = self._logits_and_targets(batch, "train")
        labels = batch[2] if isinstance(batch, (list, tuple)) and len(batch) > 2 else _hard_labels(targets)
        loss = self.loss(logits, targets)
        self.train_metrics.update(logits, labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val", self.val_metrics)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test", self.test_metrics)

    def _evaluate(self, batch: Any, batch_idx: int, stage: str, metrics: MetricCollection) -> None:
        self._check_batch(batch, batch_idx)
        logits, targets = self._logits_and_targets(batch, stage)
        self.log(f"{stage}/loss", self.loss(logits, targets), prog_bar=True, sync_dist=True)
        metrics.update(logits, _hard_labels(targets))
        self.log_dict(metrics, prog_bar=True)

    def configure_optimizers(self) -> Any:
        """Optimizer over weight-decay (and layer-decay) groups, and the scheduler stepped per interval."""
        return task_optimization_config(self)


class ImageClassifier(_ClassificationTask):
    """Train and evaluate an image classification backbone.

    The module holds step logic and ``configure_optimizers`` only; the network is injected, either as a
    registry name (``"resnet18_cifar"``, ``"timm/convnext_atto"``) or as an ``nn.Module``.

    Contract for callbacks (EMA, mixup): the network is ``self.backbone``; the loss accepts either class
    indices ``(B,)`` or class probabilities ``(B, num_classes)`` (``supports_soft_targets``); and every
    callable in ``train_batch_transforms`` maps a training batch to a new one before the forward pass. A
    transform may return ``(images, soft_targets, labels)``: the loss then uses the soft targets and the
    metrics the hard labels. Metrics always use hard labels: for probability targets without labels, the most
    likely class.

    Logged metrics: ``train/loss``, ``train/acc1``; ``val/loss``, ``val/acc1``, ``val/acc5``; the same under
    ``test/``. Top-5 accuracy is logged only when there are more than 5 classes.

    Args:
        backbone: Registry name or module. A module keeps its own head; its ``num_classes`` must match.
        num_classes: Output classes. Defaults to the registry default for a name, or to the module's
            ``num_classes``. Recipes get it linked from the data module.
        in_chans: Input channels, linked from the data module like ``num_classes``.
        backbone_kwargs: Extra builder arguments for a registry name (``drop_path_rate``, ...).
        label_smoothing: Label smoothing of the cross-entropy loss, in ``[0, 1)``.
        optimizer: ``params -> Optimizer``. Norm weights and biases are put in a group without weight decay
            (:func:`zoo.optim.param_groups_weight_decay`).
        lr_scheduler: ``optimizer -> LRScheduler``; ``total_steps`` is filled from the trainer when unset.
        lr_scheduler_interval: Step the scheduler every optimiser ``"step"`` or every ``"epoch"``.
        compile: Compile the backbone with ``torch.compile`` (in place, so checkpoint keys do not change).
        channels_last: Use the channels-last memory format, faster for convolutions on tensor cores.
        layer_decay: Layer-wise learning-rate decay for fine-tuning (BEiT; timm's ``param_groups_layer_decay``):
            each layer closer to the input learns ``layer_decay`` times slower than the next. Needs a backbone
            with timm's ``group_matcher``; ``None`` trains every layer at the same rate.

    Shapes:
        ``forward``: ``(B, in_chans, H, W)`` -> logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet18_cifar",
        num_classes: int | None = None,
        in_chans: int = 3,
        backbone_kwargs: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: bool = False,
        channels_last: bool = False,
        layer_decay: float | None = None,
    ) -> None:
        super().__init__()
        self.backbone_name = save_task_hyperparameters(self, backbone)
        self.backbone, self.num_classes = _resolve_backbone(backbone, num_classes, in_chans, backbone_kwargs)
        self.in_chans = in_chans
        self.channels_last = channels_last
        self._setup_classification(
            label_smoothing, optimizer, lr_scheduler, lr_scheduler_interval, compile, layer_decay
        )

    def configure_model(self) -> None:
        """Apply channels-last and compilation once, on the device the trainer chose."""
        if not self._configured and self.channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        super().configure_model()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` float images -> ``(B, num_classes)`` logits."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.backbone(images)

    def _logits_and_targets(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self(batch[0]), batch[1]

    def _check_batch(self, batch: Any, batch_idx: int) -> None:
        images, targets = batch[0], batch[1]
        if images.ndim != 4 or images.shape[1] != self.in_chans:
            raise ValueError(
                f"{type(self).__name__}: images of shape {tuple(images.shape)}, but backbone "
                f"{self.backbone_name!r} expects (B, {self.in_chans}, H, W) (in_chans={self.in_chans})"
            )
        self._check_labels(targets, images.shape[0], batch_idx)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities ``(B, num_classes)``."""
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(images).softmax(dim=-1)

    def training_flops(self, batch: Any) -> int:
        """FLOPs of one training step (forward and backward) on a batch shaped like ``batch``.

        Counted with ``torch.utils.flop_counter`` on a copy of the backbone on the meta device, so nothing is
        computed or allocated; used by ``zoo.callbacks.ThroughputMonitor`` for FLOP/s and utilisation.
        """
        from lightning.fabric.utilities.throughput import measure_flops

        images = batch[0].to("meta")
        if isinstance(self.hparams.get("backbone"), str):
            with torch.device("meta"):
                model = create_model(
                    self.hparams["backbone"], num_classes=self.num_classes, in_chans=self.in_chans,
                    **(self.hparams.get("backbone_kwargs") or {}),
                )  # fmt: skip
        else:
            model = copy.deepcopy(self.backbone).to("meta")
        return int(measure_flops(model, lambda: model(images), loss_fn=torch.Tensor.sum))


def _hard_labels(targets: torch.Tensor) -> torch.Tensor:
    return targets.argmax(dim=-1) if targets.is_floating_point() else targets


def _resolve_backbone(
    backbone: str | nn.Module, num_classes: int | None, in_chans: int, kwargs: dict[str, Any] | None
) -> tuple[nn.Module, int]:
    """Build a named backbone, or check a given one, and return it with its number of classes."""
    if isinstance(backbone, str):
        entry = entry_for_task(backbone, "image_classification")
        if num_classes is None:
            num_classes = int(entry.defaults.get("num_classes", 1000))
        module = create_model(backbone, num_classes=num_classes, in_chans=in_chans, **(kwargs or {}))
        return module, num_classes
    if kwargs:
        raise ValueError("backbone_kwargs apply to a backbone given by name, not to an nn.Module")
    own = getattr(backbone, "num_classes", None)
    if num_classes is None:
        if own is None:
            raise ValueError(f"pass num_classes: {type(backbone).__name__} has no num_classes attribute")
        num_classes = int(own)
    elif own is not None and own != num_classes:
        raise ValueError(
            f"backbone {type(backbone).__name__} has num_classes={own} but the task has num_classes={num_classes}; "
            f"call backbone.reset_classifier({num_classes}) or build it with num_classes={num_classes}"
        )
    return backbone, num_classes


class TextClassifier(_ClassificationTask):
    """Classify text with a ``transformers`` encoder (BERT- or RoBERTa-style).

    The encoder is a registry name: ``"bert_tiny"``, ``"bert_small"`` or ``"roberta_tiny"`` build a configuration
    from scratch, whose vocabulary size is linked from the data module's tokenizer; ``"hf/<directory>"`` loads a
    model saved with ``save_pretrained`` from a local directory (nothing is downloaded), to fine-tune it with the
    tokenizer saved beside it (``TextClassificationDataModule(tokenizer="<directory>")``). A module works too.

    Batches are dictionaries with ``input_ids`` and ``attention_mask`` ``(B, L)`` and ``labels`` ``(B,)``, as
    ``zoo.data.TextClassificationDataModule`` makes them. Metrics and logging are those of
    :class:`ImageClassifier`. Mixing callbacks are refused (``supports_soft_targets = False``): token ids do not
    blend.

    Args:
        backbone: Registry name or module.
        num_classes: Output classes; linked from the data module.
        vocab_size: Token ids the encoder embeds; linked from the data module's tokenizer for a from-scratch
            encoder, ignored for ``hf/`` models, whose vocabulary comes with them.
        backbone_kwargs: Extra configuration for a from-scratch encoder (``num_hidden_layers``, ...).
        label_smoothing, optimizer, lr_scheduler, lr_scheduler_interval, compile, layer_decay: As in
            :class:`ImageClassifier`.

    Shapes:
        ``forward``: ``input_ids (B, L)``, ``attention_mask (B, L)`` -> logits ``(B, num_classes)``.
    """

    supports_soft_targets = False

    def __init__(
        self,
        backbone: str | nn.Module = "bert_tiny",
        num_classes: int | None = None,
        vocab_size: int | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: bool = False,
        layer_decay: float | None = None,
    ) -> None:
        super().__init__()
        self.backbone_name = save_task_hyperparameters(self, backbone)
        if isinstance(backbone, str):
            entry_for_task(backbone, "text_classification")
            overrides = dict(backbone_kwargs or {})
            if num_classes is not None:
                overrides["num_classes"] = num_classes
            if vocab_size is not None and not backbone.startswith("hf/"):
                overrides["vocab_size"] = vocab_size
            backbone = create_model(backbone, **overrides)
        elif backbone_kwargs:
            raise ValueError("backbone_kwargs apply to a backbone given by name, not to an nn.Module")
        self.backbone = backbone
        self.num_classes = int(backbone.num_classes)
        if num_classes is not None and self.num_classes != num_classes:
            raise ValueError(f"backbone has num_classes={self.num_classes} but the task has num_classes={num_classes}")
        self.vocab_size = int(backbone.vocab_size)
        self._setup_classification(
            label_smoothing, optimizer, lr_scheduler, lr_scheduler_interval, compile, layer_decay
        )

    def setup(self, stage: str) -> None:
        """Check that the encoder embeds every id of the data module's tokenizer."""
        data = self.trainer.datamodule if self._trainer is not None else None
        data_vocab = getattr(data, "vocab_size", None)
        if data_vocab is not None and data_vocab > self.vocab_size:
            raise ValueError(
                f"the data's tokenizer has {data_vocab} tokens but {self.backbone_name!r} embeds {self.vocab_size}; "
                "use the tokenizer saved with the model"
            )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L)`` token ids (and mask) -> ``(B, num_classes)`` logits."""
        return self.backbone(input_ids, attention_mask)

    def _logits_and_targets(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self(batch["input_ids"], batch.get("attention_mask")), batch["labels"]

    def _check_batch(self, batch: Any, batch_idx: int) -> None:
        if not isinstance(batch, dict) or "input_ids" not in batch or "labels" not in batch:
            raise ValueError(f"{type(self).__name__} batches are dicts with 'input_ids' and 'labels'")
        self._check_labels(batch["labels"], batch["input_ids"].shape[0], batch_idx)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities ``(B, num_classes)``."""
        return self(batch["input_ids"], batch.get("attention_mask")).softmax(dim=-1)
