"""The task contract: what every zoo task is and does, declared once.

A zoo task is a thin ``LightningModule`` around an injected network (``backbone``). :class:`ZooTask` owns
what all of them share, so that a task file holds only its own step logic, and so that callbacks, export,
the leaderboard and the lifecycle steps to come can ask *any* task the same questions:

=============================  ============================================================================
``registry_task``              The registry's name for the task (``"image_classification"``, ...); a
                               backbone given by name must serve it.
``backbone``, ``backbone_name``  The network, and the name it was built from (or its class name).
``default_monitor``            ``(metric, "min" | "max")`` that ``zoo fit`` keeps the best checkpoint by.
``supports_soft_targets``      Whether the loss accepts class probabilities (mixup/cutmix need it).
``num_classes``                Output classes of a classifier; ``None`` where the task has none.
``train_batch_transforms``     Callables applied to each training batch before the forward pass.
``data_facts``                 What the data declared (labels, normalisation, tokenizer), adopted in
                               ``setup`` and stored in every checkpoint.
``count_samples(batch)``       Training samples in a batch (images, token windows, graphs, labelled nodes).
``training_flops(batch)``      FLOPs of a training step on such a batch, or ``None`` when not counted.
``inference_signature()``      Named inputs and outputs, preprocessing from raw input, labels, sizes.
``inference_module()``         The network with the signature's inputs as positional arguments.
``example_inputs(sizes, g)``   Valid random inputs of the signature's shapes (export, verification).
=============================  ============================================================================

It also owns, once: backbone resolution (registry name, ``timm/``/``hf/`` prefix or ``nn.Module``, with the
``backbone_kwargs`` rule), the optimizer and scheduler factories with no-decay groups and layer decay,
compilation and channels-last applied once on the trainer's device, the policy of when batch values are
checked (every CPU batch; the first batch of an epoch on an accelerator, where reading a value back stalls
the device), and FLOPs counting on the meta device.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, get_args

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from typing_extensions import override

from zoo.checkpoints import METADATA_KEY
from zoo.data.facts import DataFacts
from zoo.errors import ConfigError
from zoo.registry import create_model, model_info
from zoo.tasks.activation_checkpointing import enable_activation_checkpointing
from zoo.tasks.flops import meta_training_flops
from zoo.tasks.optimization import optimization_config
from zoo.tasks.signature import InferenceSignature

__all__ = ["COMPILE_MODES", "BackboneCall", "CompileOption", "ZooTask", "backbone_attribute"]

CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
CompileOption = bool | CompileMode | dict[str, Any]
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)
# torch.compile's keyword arguments that a recipe may set (``backend`` names a registered backend).
_COMPILE_KEYS = ("mode", "dynamic", "fullgraph", "backend", "options")


class ZooTask(L.LightningModule):
    """Base of every zoo task; see the module docstring for the contract it declares.

    Args:
        backbone: Registry name or module; the subclass builds it with :meth:`resolve_backbone`.
        optimizer: ``params -> Optimizer``. Norm weights, biases and a model's ``no_weight_decay()`` names are
            put in a group without weight decay (:func:`zoo.optim.param_groups_weight_decay`).
        lr_scheduler: ``optimizer -> LRScheduler``; ``total_steps`` is filled from the trainer when unset.
        lr_scheduler_interval: Step the scheduler every optimiser ``"step"`` or every ``"epoch"``.
        compile: Compile the backbone with ``torch.compile`` (in place, so checkpoint keys do not change):
            ``True`` for the default mode, a mode (``"reduce-overhead"``: CUDA graphs for small, launch-bound
            steps; ``"max-autotune"``: searched kernels, slow to compile), or ``torch.compile``'s own arguments
            as a mapping, e.g. ``{mode: max-autotune, dynamic: false, fullgraph: true}``.
        activation_checkpointing: Recompute activations in the backward pass instead of keeping them, through
            the backbone's own switch (:mod:`zoo.tasks.activation_checkpointing`): less memory for a second
            forward pass of each block. A backbone without one is refused when the task is built.
        channels_last: Use the channels-last memory format (for convolutional networks).
        layer_decay: Layer-wise learning-rate decay (BEiT; timm's ``param_groups_layer_decay``): each layer
            closer to the input learns ``layer_decay`` times slower. Needs a backbone with ``group_matcher``.

    The task's ``__init__`` arguments are saved as hyperparameters, except the optimizer and scheduler
    factories and a backbone given as a module: those cannot be stored without pickling code, and
    checkpoints load with ``torch.load(weights_only=True)``. (Under ``zoo fit`` the hyperparameters are the
    parsed recipe instead, which is plain data.)
    """

    registry_task: ClassVar[str]
    default_monitor: ClassVar[tuple[str, Literal["min", "max"]]] = ("val/loss", "min")
    supports_soft_targets: ClassVar[bool] = False
    step_loss: torch.Tensor | None = None
    """The newest training step's loss (detached), which the progress bar shows."""
    _metrics_logged_in_epoch: int | None = None

    def __init__(
        self,
        backbone: str | nn.Module,
        *,
        optimizer: OptimizerCallable,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: CompileOption = False,
        channels_last: bool = False,
        layer_decay: float | None = None,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if lr_scheduler_interval not in ("step", "epoch"):
            raise ConfigError(f"lr_scheduler_interval must be 'step' or 'epoch', got {lr_scheduler_interval!r}")
        if layer_decay is not None and not 0 < layer_decay <= 1:
            raise ConfigError(f"layer_decay must be in (0, 1], got {layer_decay}")
        ignore = ["optimizer", "lr_scheduler"] + (["backbone"] if isinstance(backbone, nn.Module) else [])
        self.save_hyperparameters(ignore=ignore, frame=self._outermost_init_frame())
        self.backbone_name: str = backbone if isinstance(backbone, str) else type(backbone).__name__
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.lr_scheduler_interval = lr_scheduler_interval
        self.compile_backbone = compile
        self.compile_options = _compile_options(compile)
        self.activation_checkpointing = activation_checkpointing
        self.channels_last = channels_last
        self.layer_decay = layer_decay
        self.num_classes: int | None = None
        self.train_batch_transforms: list[Callable[[Any], Any]] = []
        self.data_facts = DataFacts()
        self._backbone_build: tuple[str, dict[str, Any]] | None = None
        self._configured = False

    def _outermost_init_frame(self) -> Any:
        """The frame of the concrete task's ``__init__``, whose arguments are the task's hyperparameters.

        Lightning collects the arguments of the ``__init__`` it is given and of those that called it; starting
        at the concrete class's leaves out the base classes' arguments, which the task may not accept.
        """
        code = type(self).__init__.__code__
        frame = inspect.currentframe()
        while frame is not None and frame.f_code is not code:
            frame = frame.f_back
        return frame

    # Backbone ------------------------------------------------------------------------------------------------

    def resolve_backbone(
        self, backbone: str | nn.Module, backbone_kwargs: dict[str, Any] | None, **build_args: Any
    ) -> nn.Module:
        """Build a named backbone for this task, or check that ``backbone_kwargs`` were not given with a module.

        Args:
            backbone: A registry name (``"resnet18_cifar"``, ``"timm/convnext_atto"``, ``"hf/<dir>"``), which
                must serve :attr:`registry_task`, or an ``nn.Module``, returned as is.
            backbone_kwargs: Extra builder arguments for a name (``drop_path_rate``, ...).
            **build_args: Builder arguments the task derives (``num_classes``, ``in_chans``, ...); ``None``
                values are left to the model's defaults.

        Raises:
            ValueError: For a name registered for another task, ``backbone_kwargs`` with a module, or
                ``layer_decay`` with a backbone that does not split into layers.
        """
        if isinstance(backbone, str):
            entry = model_info(backbone)
            if self.registry_task not in entry.tasks:
                raise ConfigError(
                    f"{backbone!r} is a {entry.family} model for {entry.tasks}, not "
                    f"{self.registry_task.replace('_', ' ')}"
                )
            args = {**{k: v for k, v in build_args.items() if v is not None}, **(backbone_kwargs or {})}
            module = create_model(backbone, **args)
            self._backbone_build = (backbone, args)
        elif backbone_kwargs:
            raise ConfigError("backbone_kwargs apply to a backbone given by name, not to an nn.Module")
        else:
            module = backbone
        if self.activation_checkpointing:
            enable_activation_checkpointing(module, self.backbone_name)
        if self.layer_decay is not None and not hasattr(module, "group_matcher"):
            raise ConfigError(
                f"layer_decay needs a backbone that splits into layers (timm's group_matcher); "
                f"{self.backbone_name!r} has none"
            )
        return module

    @override
    def configure_model(self) -> None:
        """Apply channels-last and compilation once, on the device the trainer chose."""
        if self._configured:
            return
        self._configured = True
        if self.channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        if self.compile_backbone:
            self.backbone.compile(**self.compile_options)

    # Data ----------------------------------------------------------------------------------------------------

    @override
    def setup(self, stage: str) -> None:
        """Adopt the facts of the trainer's data module (see :meth:`adopt_data_facts`)."""
        data = self.trainer.datamodule if self._trainer is not None else None
        facts = DataFacts.of(data)
        if not facts.empty:
            self.adopt_data_facts(facts)

    def adopt_data_facts(self, facts: DataFacts) -> None:
        """Keep the data's facts (for the signature and the checkpoint); subclasses check them first.

        Raises:
            ValueError: In subclasses, when the data does not fit the network (a larger vocabulary, say).
        """
        self.data_facts = facts

    def check_now(self, values: torch.Tensor, batch_idx: int) -> bool:
        """Whether to read ``values`` back and check them now.

        On every CPU batch, and on the first batch of each epoch on an accelerator, where reading a value back
        every step would stall the device.
        """
        return values.device.type == "cpu" or batch_idx == 0

    # Logging -------------------------------------------------------------------------------------------------

    def log_training_loss(self, loss: torch.Tensor) -> None:
        """Log ``train/loss`` on the steps the loggers write, and keep every step's loss for the progress bar.

        Loggers write a step value only every ``log_every_n_steps`` steps, but each ``self.log`` call costs
        Lightning's result bookkeeping (about 0.3 ms on a CPU, a tenth of a Cora epoch). The loss is logged on
        those steps, on the last step of an epoch and of the run (so epoch-end callbacks such as
        ``EarlyStopping`` or a checkpoint monitoring ``train/loss`` see the newest one), and on every step when
        ``log_every_n_steps`` is 1 or in a ``fast_dev_run``. The progress bar shows each step's loss from
        :attr:`step_loss`.
        """
        self.step_loss = loss.detach()
        trainer = self._trainer
        if trainer is None or _logs_this_step(trainer):
            self.log("train/loss", loss)

    def log_epoch_metrics(self, metrics: Any) -> None:
        """Register torchmetrics objects (updated by the caller every step) for their epoch value, once an epoch.

        Lightning keeps a reference to a logged metric and computes it when the epoch ends, so logging it on
        every step, as ``log_dict(metrics, on_step=False, on_epoch=True)`` usually is, repeats bookkeeping whose
        result is thrown away.
        """
        if self._metrics_logged_in_epoch != self.current_epoch:
            self.log_dict(metrics, on_step=False, on_epoch=True)
            self._metrics_logged_in_epoch = self.current_epoch

    @override
    def on_train_start(self) -> None:
        """Forget which epoch's metrics were registered: a second ``fit`` starts its epochs again."""
        self._metrics_logged_in_epoch = None

    # Optimisation --------------------------------------------------------------------------------------------

    @override
    def configure_optimizers(self) -> Any:
        """Optimizer over weight-decay (and layer-decay) groups of the backbone, and the scheduler."""
        return optimization_config(
            self.backbone,
            self.optimizer_factory,
            self.lr_scheduler_factory,
            self.lr_scheduler_interval,
            lambda: self.trainer.estimated_stepping_batches,
            self.layer_decay,
        )

    # Counting ------------------------------------------------------------------------------------------------

    def count_samples(self, batch: Any) -> int | torch.Tensor:
        """Training samples in ``batch``: the leading size of its first tensor (images, token windows).

        Tasks whose samples are not rows of a tensor (graphs, labelled nodes) override this; a tensor result
        is a count left on the device, to be read once after training rather than every step.
        """
        if isinstance(batch, dict):
            batch = next(iter(batch.values()))
        first = batch[0] if isinstance(batch, list | tuple) else batch
        return int(first.shape[0])

    def flops_inputs(self, batch: Any) -> tuple[torch.Tensor | None, ...] | None:
        """The backbone's positional inputs for a batch shaped like ``batch``, built on the current (meta) device.

        ``None`` (the default) means the task does not count its FLOPs; tasks that do override this.
        """
        return None

    def training_flops(self, batch: Any) -> int | None:
        """FLOPs of one training step (forward and backward of the backbone) on a batch shaped like ``batch``.

        Counted with ``torch.utils.flop_counter`` on a meta-device copy of the backbone (a named one is rebuilt
        there, which also works when the backbone is compiled), so nothing is computed or allocated.
        ``zoo.callbacks.ThroughputMonitor`` and the benchmarks use it for FLOP/s and utilisation.

        Returns:
            The count, or ``None`` when the task does not count FLOPs (:meth:`flops_inputs` returns ``None``).
        """
        with torch.device("meta"):  # shapes only: nothing of the batch's size is allocated
            inputs = self.flops_inputs(batch)
        if inputs is None:
            return None
        build = self._backbone_build
        # Only the shapes matter: the copy loads no weights (a file read, or a download for pretrained=True).
        shapes_only = {k: v for k, v in build[1].items() if k not in ("weights", "pretrained")} if build else {}
        make_model = (lambda: create_model(build[0], **shapes_only)) if build is not None else None
        return meta_training_flops(self.backbone, lambda: inputs, make_model=make_model)

    # Inference -----------------------------------------------------------------------------------------------

    def inference_signature(self) -> InferenceSignature:
        """The task's :class:`~zoo.tasks.signature.InferenceSignature`; every task defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not declare its inference signature")

    def inference_module(self) -> nn.Module:
        """The network to export or serve, taking the signature's inputs in order (the backbone by default)."""
        return self.backbone

    def example_inputs(self, sizes: Mapping[str, int], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Valid random inputs for the symbolic ``sizes`` (e.g. ``{"batch": 3}``), in the signature's order."""
        raise NotImplementedError(f"{type(self).__name__} does not make example inputs")

    @property
    def example_input_array(self) -> Any:
        """Inputs of the signature's example sizes, so Lightning's model summary shows sizes and FLOPs per layer.

        ``None`` for a compiled backbone: the summary's forward pass would compile it for a size that training
        does not use. Set it to override.
        """
        if self._example_input_array is not None or self.compile_backbone:
            return self._example_input_array
        try:
            signature = self.inference_signature()
        except NotImplementedError:
            return None
        return self.example_inputs(signature.example_sizes, torch.Generator().manual_seed(0))

    @example_input_array.setter
    def example_input_array(self, example: Any) -> None:
        self._example_input_array = example

    def labels(self) -> tuple[str, ...] | None:
        """Class names from the data, when they fit the task's classes."""
        names = self.data_facts.class_names
        if names is None or (self.num_classes is not None and len(names) != self.num_classes):
            return None
        return names

    # Checkpoints ---------------------------------------------------------------------------------------------

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the data facts, so the checkpoint alone can be exported, evaluated and served."""
        if not self.data_facts.empty:
            checkpoint.setdefault(METADATA_KEY, {})["data"] = self.data_facts.to_dict()

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Read the stored data facts back, unless this run's data module already declared its own."""
        if self.data_facts.empty:
            self.data_facts = DataFacts.from_dict((checkpoint.get(METADATA_KEY) or {}).get("data"))


class BackboneCall(nn.Module):
    """The backbone behind a ``forward`` whose positional arguments are the signature's inputs, in order.

    Export traces a module with a fixed argument list; a task whose backbone takes optional or keyword
    arguments returns a subclass that defines only that ``forward`` (its weights keep the ``backbone.`` prefix).
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone


def backbone_attribute(
    module: nn.Module, name: str, wanted: int | None, purpose: str, at_least: bool = False, optional: bool = False
) -> int | None:
    """A size a module backbone declares (``num_classes``, ``in_channels``, ...), checked against the task's.

    Args:
        module: The backbone given as a module.
        name: The attribute.
        wanted: The task's value, or ``None`` to take the module's.
        purpose: What the module serves as, for the message (``"an image classifier"``).
        at_least: The module's value may exceed the wanted one (a context length, a vocabulary).
        optional: The attribute may be missing or ``None`` when nothing is wanted.

    Returns:
        The module's value, or ``wanted`` when the module does not say.

    Raises:
        ValueError: Naming the attribute, when neither says, or when they disagree.
    """
    own = getattr(module, name, None)
    if own is None:
        if wanted is None and not optional:
            raise ConfigError(f"pass {name}: {type(module).__name__} has no {name} attribute to serve as {purpose}")
        return wanted
    if wanted is not None and at_least and own < wanted:
        raise ConfigError(
            f"backbone {type(module).__name__} has {name}={own}, smaller than the {wanted} asked for; build it with "
            f"{name}={wanted}"
        )
    if wanted is not None and not at_least and own != wanted:
        resettable = name == "num_classes" and hasattr(module, "reset_classifier")
        fix = f"call backbone.reset_classifier({wanted}) or " if resettable else ""
        raise ConfigError(
            f"backbone {type(module).__name__} has {name}={own} but the task has {name}={wanted}; "
            f"{fix}build it with {name}={wanted}"
        )
    return int(own)


def _logs_this_step(trainer: L.Trainer) -> bool:
    """Whether a step value logged now reaches the loggers or an epoch- or run-end reader."""
    if trainer.fast_dev_run or trainer.log_every_n_steps <= 1 or trainer.should_stop:
        return True
    loop = trainer.fit_loop.epoch_loop
    final = trainer.max_steps > 0 and trainer.global_step + 1 >= trainer.max_steps
    return trainer._logger_connector.should_update_logs or loop.batch_progress.is_last_batch or final


def _compile_options(compile: CompileOption) -> dict[str, Any]:
    """``torch.compile`` keyword arguments for a task's ``compile`` setting; a bad mode or key is named."""
    if isinstance(compile, bool):
        return {}
    options = {"mode": compile} if isinstance(compile, str) else compile
    if not isinstance(options, Mapping):
        raise ConfigError(f"compile must be true/false, a mode or torch.compile's arguments, got {compile!r}")
    unknown = sorted(set(options) - set(_COMPILE_KEYS))
    if unknown:
        raise ConfigError(f"compile: torch.compile takes no {unknown}; it takes {', '.join(_COMPILE_KEYS)}")
    if "mode" in options and options["mode"] not in COMPILE_MODES:
        raise ConfigError(f"compile: unknown mode {options['mode']!r}; one of true, {', '.join(COMPILE_MODES)}")
    return dict(options)
