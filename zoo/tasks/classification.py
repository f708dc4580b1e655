"""Classification tasks: thin LightningModules around an image backbone or a text encoder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from typing_extensions import override

from zoo.checkpoints import METADATA_KEY
from zoo.data.facts import DataFacts, tokenizer_spec
from zoo.errors import ConfigError, DataError
from zoo.registry import model_info
from zoo.tasks.base import BackboneCall, CompileOption, ZooTask, backbone_attribute
from zoo.tasks.eval_metrics import check_metric_names, extra_metrics
from zoo.tasks.losses import LOSSES, balanced_weights, classification_loss, distillation_loss
from zoo.tasks.signature import ImageInput, InferenceSignature, TensorSpec, TextInput

__all__ = ["ClassificationTask", "ImageClassifier", "TextClassifier"]


class ClassificationTask(ZooTask):
    """Step logic, metrics and label checks shared by every classification task (images, text, nodes, graphs).

    A subclass builds ``self.backbone``, sets ``self.num_classes``, calls :meth:`build_metrics`, and defines the
    logits and targets of a batch for a stage (:meth:`logits_and_targets`) and what a well-formed batch is
    (:meth:`check_batch`).

    Logged metrics: ``train/loss``, ``train/acc1``; ``val/loss``, ``val/acc1``, ``val/acc5``; the same under
    ``test/``. Top-5 accuracy is logged only when there are more than 5 classes.

    Args:
        backbone: Registry name or module.
        label_smoothing: Label smoothing of the loss, in ``[0, 1)``.
        loss: ``cross_entropy``, or ``focal`` for skewed classes (:mod:`zoo.tasks.losses`).
        focal_gamma: The focal loss's focusing parameter (0 makes it cross-entropy).
        class_weights: Per-class loss weights: ``balanced`` (inverse training-class frequency, from the data
            module's class counts) or one weight per class.
        metrics: Figures to log beside accuracy in validation and test (:data:`~zoo.tasks.eval_metrics.EXTRA_METRICS`:
            ``f1_macro``, ``auroc``, ``ece``, ...).
        teacher: A classifier checkpoint to distil from (knowledge distillation): its logits on each training
            batch, after mixing, are the soft targets. It is loaded when training starts, frozen in eval mode,
            and never saved in this task's checkpoints (only its path is, among the hyper-parameters).
        distill_alpha: Weight of the soft-target loss; ``(1 - alpha)`` weighs the hard-label loss.
        distill_temperature: Softmax temperature of the soft targets (:func:`~zoo.tasks.losses.distillation_loss`).
        **common: The arguments of :class:`~zoo.tasks.ZooTask` (optimizer, scheduler, compile, ...).
    """

    supports_soft_targets = True
    default_monitor = ("val/acc1", "max")

    def __init__(
        self,
        backbone: str | nn.Module,
        *,
        label_smoothing: float = 0.0,
        loss: Literal["cross_entropy", "focal"] = "cross_entropy",
        focal_gamma: float = 2.0,
        class_weights: Literal["balanced"] | list[float] | None = None,
        metrics: list[str] | None = None,
        teacher: str | None = None,
        distill_alpha: float = 0.5,
        distill_temperature: float = 4.0,
        **common: Any,
    ) -> None:
        if not 0 <= distill_alpha <= 1:
            raise ConfigError(f"distill_alpha must be in [0, 1], got {distill_alpha}")
        if not distill_temperature > 0:
            raise ConfigError(f"distill_temperature must be > 0, got {distill_temperature}")
        if not 0 <= label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if loss not in LOSSES:
            raise ConfigError(f"loss {loss!r}: choose one of {', '.join(LOSSES)}")
        if focal_gamma < 0:
            raise ConfigError(f"focal_gamma must be >= 0, got {focal_gamma}")
        if isinstance(class_weights, str) and class_weights != "balanced":
            raise ConfigError(f"class_weights {class_weights!r}: give 'balanced' or one weight per class")
        if isinstance(class_weights, list) and any(not w >= 0 for w in class_weights):
            raise ConfigError(f"class_weights must be >= 0, got {class_weights}")
        self.extra_metric_names = check_metric_names(metrics)
        super().__init__(backbone, **common)
        self.label_smoothing = label_smoothing
        self.loss_name, self.focal_gamma, self.class_weights = loss, focal_gamma, class_weights
        self._loss_weight: torch.Tensor | None = None
        self.temperature = 1.0  # set from a calibrated checkpoint (zoo evaluate --calibrate)
        self.teacher_path, self.distill_alpha, self.distill_temperature = teacher, distill_alpha, distill_temperature
        self._teacher: Any = None  # loaded at fit time; kept out of the module tree (no state_dict, no optimizer)

    @property
    def teacher(self) -> Any:
        """The frozen teacher task, or ``None`` without distillation (loaded on first use)."""
        if self.teacher_path is not None and self._teacher is None:
            object.__setattr__(self, "_teacher", _load_teacher(self.teacher_path, self.num_classes))
        return self._teacher

    @override
    def setup(self, stage: str) -> None:
        """Load the teacher before training starts, so that a wrong one fails before the first step."""
        super().setup(stage)
        if stage == "fit":
            _ = self.teacher

    def loss_weight(self) -> torch.Tensor | None:
        """The per-class loss weights ``(C,)``: the given ones, or "balanced" from the training class counts.

        Raises:
            ConfigError: When the number of weights is not the number of classes, or "balanced" cannot be
                computed because the data module does not report its training class counts.
        """
        if self._loss_weight is not None or self.class_weights is None:
            return self._loss_weight
        if self.class_weights == "balanced":
            data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
            counts = ((data.fingerprint() if hasattr(data, "fingerprint") else {}).get("class_counts") or {}).get(
                "train"
            )
            if not counts:
                raise ConfigError(
                    "class_weights: balanced needs the training split's class counts, which this data module does "
                    "not report; give one weight per class instead"
                )
            counts = list(counts) + [0] * ((self.num_classes or 0) - len(counts))
            weight = balanced_weights(counts)
        else:
            weight = torch.tensor(self.class_weights, dtype=torch.float32)
        if weight.numel() != self.num_classes:
            raise ConfigError(f"class_weights: {weight.numel()} weights for {self.num_classes} classes")
        self._loss_weight = weight.to(self.device)
        return self._loss_weight

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(..., C)``: the softmax of the logits divided by the fitted temperature (else 1)."""
        return (logits / self.temperature).softmax(dim=-1)

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Also take the temperature a calibrated checkpoint carries (``zoo_metadata["calibration"]``)."""
        super().on_load_checkpoint(checkpoint)
        calibration = (checkpoint.get(METADATA_KEY) or {}).get("calibration") or {}
        self.temperature = float(calibration.get("temperature", 1.0))

    def build_metrics(self) -> None:
        """Create the accuracy metrics for ``self.num_classes`` classes (call once the backbone is built)."""
        assert self.num_classes is not None
        top_k = {"acc1": 1, "acc5": 5} if self.num_classes > 5 else {"acc1": 1}
        eval_metrics = MetricCollection(
            {name: MulticlassAccuracy(self.num_classes, top_k=k, average="micro") for name, k in top_k.items()}
            | extra_metrics(self.extra_metric_names, self.num_classes)
        )
        self.train_metrics = MetricCollection(
            {"acc1": MulticlassAccuracy(self.num_classes, average="micro")}, prefix="train/"
        )
        # An epoch's training accuracy accumulates over its batches; keeping the running counts in the
        # checkpoint lets a run resumed mid-epoch report the same epoch value as an uninterrupted one.
        self.train_metrics.persistent(True)
        self.val_metrics = eval_metrics.clone(prefix="val/")
        self.test_metrics = eval_metrics.clone(prefix="test/")

    @override
    def on_fit_start(self) -> None:
        """Recreate evaluation-metric states, which a ``validate``/``test`` run before ``fit`` made read-only.

        Metric states created under ``torch.inference_mode`` cannot be updated in place outside it, as the
        validation loop inside ``fit`` does. (Training metrics are not reset: they may hold a resumed epoch.)
        """
        self.val_metrics.reset()
        self.test_metrics.reset()
        self._warn_of_imbalance()

    def _training_class_counts(self) -> list[int] | None:
        data = getattr(self.trainer, "datamodule", None)
        if not hasattr(data, "fingerprint"):
            return None
        return ((data.fingerprint().get("class_counts") or {}).get("train")) or None

    def _warn_of_imbalance(self) -> None:
        """Warn when the training classes are skewed beyond 10:1 and nothing in the recipe accounts for it."""
        data = getattr(self.trainer, "datamodule", None)
        handled = self.class_weights is not None or self.loss_name != "cross_entropy"
        if handled or getattr(data, "sampler", "random") == "balanced":
            return
        counts = self._training_class_counts()
        if not counts or len(counts) < 2:
            return
        ratio = max(counts) / max(min(counts), 1)
        if min(counts) == 0 or ratio > 10:
            rank_zero_warn(
                f"the training classes are skewed {ratio:.0f}:1 (smallest class {min(counts)} examples, largest "
                f"{max(counts)}); consider class_weights: balanced, loss: focal, or the data module's sampler: "
                "balanced, and judge the run by macro F1 (zoo evaluate), not accuracy"
            )

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy or focal loss, with the class weights; ``targets`` are ``(B,)`` or ``(B, C)``.

        Index targets are label-smoothed; probability targets are used as given: whoever made them (e.g. mixup)
        already applied the smoothing.
        """
        smoothing = 0.0 if targets.is_floating_point() else self.label_smoothing
        weight = self.loss_weight()
        if weight is not None and weight.device != logits.device:
            weight = self._loss_weight = weight.to(logits.device)
        return classification_loss(logits, targets, self.loss_name, weight, smoothing, self.focal_gamma)

    def logits_and_targets(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, C)`` and targets ``(B,)`` or ``(B, C)`` of a batch in ``stage`` (train, val, test)."""
        raise NotImplementedError

    def check_batch(self, batch: Any, batch_idx: int) -> None:
        """Reject malformed batches with a message that names the problem."""

    def check_labels(self, targets: torch.Tensor, batch_size: int, batch_idx: int) -> None:
        """Soft targets must be ``(B, C)``; hard labels must lie in ``[0, num_classes)`` (see :meth:`check_now`)."""
        if targets.is_floating_point():
            if targets.shape != (batch_size, self.num_classes):
                raise DataError(
                    f"{type(self).__name__}: soft targets of shape {tuple(targets.shape)}, expected "
                    f"({batch_size}, {self.num_classes})"
                )
        elif targets.numel() and self.check_now(targets, batch_idx):
            low, high = int(targets.min()), int(targets.max())
            if low < 0 or high >= self.num_classes:
                bad = low if low < 0 else high
                raise DataError(
                    f"{type(self).__name__}: label {bad} is outside [0, num_classes={self.num_classes}); "
                    "check the data's labels or the model's num_classes"
                )

    @override
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.check_batch(batch, batch_idx)
        for transform in self.train_batch_transforms:
            batch = transform(batch)
        logits, targets = self.logits_and_targets(batch, "train")
        labels = batch[2] if isinstance(batch, list | tuple) and len(batch) > 2 else _hard_labels(targets)
        loss = self.loss(logits, targets)
        if self.teacher is not None:
            soft = distillation_loss(logits, self._teacher_logits(batch), self.distill_temperature)
            loss = (1 - self.distill_alpha) * loss + self.distill_alpha * soft
            if self.check_now(soft, batch_idx):
                self.log("train/distill_kl", soft / self.distill_temperature**2)
        self.train_metrics.update(logits, labels)
        self.log_training_loss(loss)
        self.log_epoch_metrics(self.train_metrics)
        return loss

    @torch.no_grad()
    def _teacher_logits(self, batch: Any) -> torch.Tensor:
        teacher = self.teacher
        if next(teacher.parameters()).device != self.device:
            teacher.to(self.device)
        return teacher.logits_and_targets(batch, "train")[0]

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val", self.val_metrics)

    @override
    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test", self.test_metrics)

    def _evaluate(self, batch: Any, batch_idx: int, stage: str, metrics: MetricCollection) -> None:
        self.check_batch(batch, batch_idx)
        logits, targets = self.logits_and_targets(batch, stage)
        self.log(f"{stage}/loss", self.loss(logits, targets), prog_bar=True, sync_dist=True)
        metrics.update(logits, _hard_labels(targets))
        self.log_dict(metrics, prog_bar=True)

    def _classifier_output(self, size: str) -> TensorSpec:
        return TensorSpec(
            "logits", (size, self.num_classes or 0), "float32", "class scores; their softmax is the probabilities"
        )


class ImageClassifier(ClassificationTask):
    """Train and evaluate an image classification backbone.

    The module holds step logic and ``configure_optimizers`` only; the network is injected, either as a
    registry name (``"resnet18_cifar"``, ``"timm/convnext_atto"``) or as an ``nn.Module``.

    Contract for callbacks (EMA, mixup): the network is ``self.backbone``; the loss accepts either class
    indices ``(B,)`` or class probabilities ``(B, num_classes)`` (``supports_soft_targets``); and every
    callable in ``train_batch_transforms`` maps a training batch to a new one before the forward pass. A
    transform may return ``(images, soft_targets, labels)``: the loss then uses the soft targets and the
    metrics the hard labels. Metrics always use hard labels: for probability targets without labels, the most
    likely class.

    Args:
        backbone: Registry name or module. A module keeps its own head; its ``num_classes`` must match.
        num_classes: Output classes. Defaults to the registry default for a name, or to the module's
            ``num_classes``. Recipes get it linked from the data module.
        in_chans: Input channels, linked from the data module like ``num_classes``.
        backbone_kwargs: Extra builder arguments for a registry name (``drop_path_rate``, ...).
        pretrained: Start from a weight card of the named backbone: its tag (``"cifar10"``, see ``zoo weights``)
            or ``True`` for the first; another class count keeps a fresh head. Same as ``backbone_kwargs:
            {pretrained: TAG}``.
        label_smoothing: Label smoothing of the loss, in ``[0, 1)``.
        loss, focal_gamma, class_weights: The loss for skewed classes, as in :class:`ClassificationTask`.
        metrics: Figures logged beside accuracy, as in :class:`ClassificationTask`.
        teacher, distill_alpha, distill_temperature: Knowledge distillation from a classifier checkpoint, as in
            :class:`ClassificationTask`; the teacher sees the same (mixed) images as the student.
        optimizer, lr_scheduler, lr_scheduler_interval, compile, channels_last, layer_decay,
            activation_checkpointing: See :class:`~zoo.tasks.ZooTask`.

    Shapes:
        ``forward``: ``(B, in_chans, H, W)`` -> logits ``(B, num_classes)``.
    """

    registry_task = "image_classification"

    def __init__(
        self,
        backbone: str | nn.Module = "resnet18_cifar",
        num_classes: int | None = None,
        in_chans: int = 3,
        backbone_kwargs: dict[str, Any] | None = None,
        pretrained: bool | str | None = None,
        label_smoothing: float = 0.0,
        loss: Literal["cross_entropy", "focal"] = "cross_entropy",
        focal_gamma: float = 2.0,
        class_weights: Literal["balanced"] | list[float] | None = None,
        metrics: list[str] | None = None,
        teacher: str | None = None,
        distill_alpha: float = 0.5,
        distill_temperature: float = 4.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: CompileOption = False,
        channels_last: bool = False,
        layer_decay: float | None = None,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__(
            backbone,
            label_smoothing=label_smoothing,
            loss=loss,
            focal_gamma=focal_gamma,
            class_weights=class_weights,
            metrics=metrics,
            teacher=teacher,
            distill_alpha=distill_alpha,
            distill_temperature=distill_temperature,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_scheduler_interval=lr_scheduler_interval,
            compile=compile,
            activation_checkpointing=activation_checkpointing,
            channels_last=channels_last,
            layer_decay=layer_decay,
        )
        self.backbone = self.resolve_backbone(
            backbone, backbone_kwargs, num_classes=num_classes, in_chans=in_chans, pretrained=pretrained
        )
        self.num_classes = backbone_attribute(self.backbone, "num_classes", num_classes, "an image classifier")
        self.in_chans = in_chans
        self.build_metrics()

    @override
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` float images -> ``(B, num_classes)`` logits."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.backbone(images)

    @override
    def logits_and_targets(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self(batch[0]), batch[1]

    @override
    def check_batch(self, batch: Any, batch_idx: int) -> None:
        images, targets = batch[0], batch[1]
        if images.ndim != 4 or images.shape[1] != self.in_chans:
            raise DataError(
                f"{type(self).__name__}: images of shape {tuple(images.shape)}, but backbone "
                f"{self.backbone_name!r} expects (B, {self.in_chans}, H, W) (in_chans={self.in_chans})"
            )
        self.check_labels(targets, images.shape[0], batch_idx)

    @override
    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities ``(B, num_classes)``."""
        images = batch[0] if isinstance(batch, list | tuple) else batch
        return self.probabilities(self(images))

    @override
    def flops_inputs(self, batch: Any) -> tuple[torch.Tensor, ...]:
        return (torch.empty(batch[0].shape),)

    # Inference -----------------------------------------------------------------------------------------------

    def image_size(self) -> int:
        """Side of the square input: the data's, else the registry's default input, else timm's, else 32."""
        if self.data_facts.image_size is not None:
            return int(self.data_facts.image_size)
        if self._backbone_build is not None:
            return int(model_info(self._backbone_build[0]).input_spec.shape[-1])
        return int(getattr(self.backbone, "default_cfg", {}).get("input_size", (3, 32, 32))[-1])

    @override
    def inference_signature(self) -> InferenceSignature:
        side, facts = self.image_size(), self.data_facts
        return InferenceSignature(
            task=self.registry_task,
            inputs=(TensorSpec("images", ("batch", self.in_chans, side, side), "float32", "normalised images"),),
            outputs=(self._classifier_output("batch"),),
            preprocessing=ImageInput(side, self.in_chans, facts.mean, facts.std, facts.crop_pct),
            labels=self.labels(),
            example_sizes={"batch": 2},
            check_sizes=({"batch": 1}, {"batch": 5}),
        )

    @override
    def example_inputs(self, sizes: Mapping[str, int], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        side = self.image_size()
        return (torch.randn(sizes["batch"], self.in_chans, side, side, generator=generator),)


def _load_teacher(path: str, num_classes: int | None) -> Any:
    """The classifier in the checkpoint at ``path``, frozen in eval mode.

    Raises:
        ValueError: When the file is not a classifier checkpoint or its classes differ from the student's.
    """
    from zoo.checkpoints import load_checkpoint

    if not Path(path).is_file():
        raise ConfigError(
            f"teacher {path!r} is not a file: give the checkpoint of a trained zoo classifier (zoo fit writes them "
            "under runs/<recipe>/version_N/checkpoints/)"
        )
    task = load_checkpoint(path).task
    if not isinstance(task, ClassificationTask):
        raise ConfigError(f"teacher {path} holds a {type(task).__name__}, not a classifier")
    if task.num_classes != num_classes:
        raise ConfigError(f"teacher {path} has {task.num_classes} classes but the student has {num_classes}")
    task.eval().requires_grad_(False)
    return task


def _hard_labels(targets: torch.Tensor) -> torch.Tensor:
    return targets.argmax(dim=-1) if targets.is_floating_point() else targets


class _TextModel(BackboneCall):
    """A text classifier with the fixed argument list ``(input_ids, attention_mask)`` that export needs."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids, attention_mask)


class TextClassifier(ClassificationTask):
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
        label_smoothing, loss, focal_gamma, class_weights, metrics, teacher, distill_alpha, distill_temperature,
            optimizer, lr_scheduler, lr_scheduler_interval, compile, layer_decay, activation_checkpointing: As in
            :class:`ImageClassifier`.

    Shapes:
        ``forward``: ``input_ids (B, L)``, ``attention_mask (B, L)`` -> logits ``(B, num_classes)``.
    """

    registry_task = "text_classification"
    supports_soft_targets = False

    def __init__(
        self,
        backbone: str | nn.Module = "bert_tiny",
        num_classes: int | None = None,
        vocab_size: int | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        loss: Literal["cross_entropy", "focal"] = "cross_entropy",
        focal_gamma: float = 2.0,
        class_weights: Literal["balanced"] | list[float] | None = None,
        metrics: list[str] | None = None,
        teacher: str | None = None,
        distill_alpha: float = 0.5,
        distill_temperature: float = 4.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: CompileOption = False,
        layer_decay: float | None = None,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__(
            backbone,
            label_smoothing=label_smoothing,
            loss=loss,
            focal_gamma=focal_gamma,
            class_weights=class_weights,
            metrics=metrics,
            teacher=teacher,
            distill_alpha=distill_alpha,
            distill_temperature=distill_temperature,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_scheduler_interval=lr_scheduler_interval,
            compile=compile,
            activation_checkpointing=activation_checkpointing,
            layer_decay=layer_decay,
        )
        brings_vocabulary = isinstance(backbone, str) and backbone.startswith("hf/")
        self.backbone = self.resolve_backbone(
            backbone, backbone_kwargs, num_classes=num_classes, vocab_size=None if brings_vocabulary else vocab_size
        )
        self.num_classes = backbone_attribute(self.backbone, "num_classes", num_classes, "a text classifier")
        self.vocab_size = backbone_attribute(self.backbone, "vocab_size", None, "a text classifier")
        self.build_metrics()

    @override
    def adopt_data_facts(self, facts: DataFacts) -> None:
        """Check that the encoder embeds every id of the data module's tokenizer."""
        if facts.vocab_size is not None and self.vocab_size is not None and facts.vocab_size > self.vocab_size:
            raise DataError(
                f"the data's tokenizer has {facts.vocab_size} tokens but {self.backbone_name!r} embeds "
                f"{self.vocab_size}; use the tokenizer saved with the model"
            )
        super().adopt_data_facts(facts)

    @override
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L)`` token ids (and mask) -> ``(B, num_classes)`` logits."""
        return self.backbone(input_ids, attention_mask)

    @override
    def logits_and_targets(self, batch: Any, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self(batch["input_ids"], batch.get("attention_mask")), batch["labels"]

    @override
    def check_batch(self, batch: Any, batch_idx: int) -> None:
        if not isinstance(batch, dict) or "input_ids" not in batch or "labels" not in batch:
            raise DataError(f"{type(self).__name__} batches are dicts with 'input_ids' and 'labels'")
        self.check_labels(batch["labels"], batch["input_ids"].shape[0], batch_idx)

    @override
    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Class probabilities ``(B, num_classes)``."""
        return self.probabilities(self(batch["input_ids"], batch.get("attention_mask")))

    # Inference -----------------------------------------------------------------------------------------------

    @override
    def inference_signature(self) -> InferenceSignature:
        longest = int(self.backbone.max_length)
        ids = f"token ids in [0, {self.vocab_size})"
        return InferenceSignature(
            task=self.registry_task,
            inputs=(
                TensorSpec("input_ids", ("batch", "tokens"), "int64", ids, {"tokens": longest}),
                TensorSpec("attention_mask", ("batch", "tokens"), "int64", "1: token, 0: padding", {"tokens": longest}),
            ),
            outputs=(self._classifier_output("batch"),),
            preprocessing=TextInput(tokenizer_spec(self.data_facts.tokenizer), self.data_facts.max_length or longest),
            labels=self.labels(),
            example_sizes={"batch": 2, "tokens": min(12, longest)},
            check_sizes=({"batch": 1, "tokens": min(5, longest)}, {"batch": 3, "tokens": min(40, longest)}),
        )

    @override
    def inference_module(self) -> nn.Module:
        return _TextModel(self.backbone)

    @override
    def example_inputs(self, sizes: Mapping[str, int], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        assert self.vocab_size is not None
        shape = (sizes["batch"], sizes["tokens"])
        ids = torch.randint(min(5, self.vocab_size - 1), self.vocab_size, shape, generator=generator)
        mask = torch.ones_like(ids)
        mask[0, sizes["tokens"] // 2 :] = 0  # the first sequence is padded
        return ids, mask
