"""Causal language modelling: next-token prediction with any decoder registered for it."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.text import Perplexity

from zoo.data.tokenizers import Tokenizer, tokenizer_from_config
from zoo.models.transformer.gpt import generate
from zoo.registry import create_model
from zoo.tasks.backbones import entry_for_task, save_task_hyperparameters
from zoo.tasks.flops import meta_training_flops
from zoo.tasks.optimization import task_optimization_config

__all__ = ["LanguageModel"]


class LanguageModel(L.LightningModule):
    """Train a decoder to predict each next token; evaluate its loss and perplexity; sample from it.

    Batches are ``(inputs, targets)`` of token ids, ``(B, T)`` each, with ``targets`` the inputs shifted by one
    (``zoo.data.TextCorpusDataModule`` makes them). The loss is the mean cross-entropy over all ``B * T``
    positions; ``val/ppl`` is its exponential, accumulated over the whole validation set.

    Optimisation follows GPT practice: AdamW whose decay skips norm weights, biases and embeddings (the model's
    ``no_weight_decay()``), warm-up then cosine (``zoo.optim.WarmupCosineLR``), and bf16, gradient clipping and
    accumulation from the trainer (``precision``, ``gradient_clip_val``, ``accumulate_grad_batches``).

    The tokenizer of the data module is kept and stored in every checkpoint, so
    ``LanguageModel.load_from_checkpoint(path).generate("ROMEO:")`` (or ``zoo generate``) needs nothing else.

    Args:
        backbone: Registry name of a language model (``"gpt_nano"``, ``"gpt_mini"``, ``"gpt2_124m"``) or a module
            mapping ``(B, T)`` ids to ``(B, T, V)`` logits with ``vocab_size`` and ``block_size`` attributes.
        vocab_size: Number of token ids; linked from the data module by ``zoo fit``. Defaults to the model's.
        block_size: Longest context; linked from the data module's block size. Defaults to the model's.
        backbone_kwargs: Extra builder arguments for a named backbone (``dropout``, ``n_layer``, ...).
        optimizer: ``params -> Optimizer``.
        lr_scheduler: ``optimizer -> LRScheduler``; ``total_steps`` is filled from the trainer when unset.
        lr_scheduler_interval: Step the scheduler every ``"step"`` or ``"epoch"``.
        compile: Compile the backbone with ``torch.compile`` (in place).
        layer_decay: Layer-wise learning-rate decay for fine-tuning (see ``ImageClassifier``).

    Shapes:
        ``forward``: ``(B, T)`` int64 -> ``(B, T, vocab_size)`` logits.
    """

    supports_soft_targets = False
    default_monitor = ("val/loss", "min")

    def __init__(
        self,
        backbone: str | nn.Module = "gpt_mini",
        vocab_size: int | None = None,
        block_size: int | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: bool = False,
        layer_decay: float | None = None,
    ) -> None:
        super().__init__()
        self.backbone_name = save_task_hyperparameters(self, backbone)
        self.backbone = _resolve_backbone(backbone, vocab_size, block_size, backbone_kwargs)
        self.vocab_size: int = self.backbone.vocab_size
        self.block_size: int = self.backbone.block_size
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.lr_scheduler_interval = lr_scheduler_interval
        self.compile_backbone = compile
        self.layer_decay = layer_decay
        self.tokenizer: Tokenizer | None = None
        self.train_batch_transforms: list[Any] = []
        self.val_perplexity = Perplexity()
        self._compiled = False

    def setup(self, stage: str) -> None:
        """Adopt the data module's tokenizer, checking that the model covers its vocabulary."""
        data = self.trainer.datamodule if self._trainer is not None else None
        tokenizer = getattr(data, "tokenizer", None)
        if tokenizer is not None:
            if tokenizer.vocab_size > self.vocab_size:
                raise ValueError(
                    f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is {self.vocab_size}"
                )
            self.tokenizer = tokenizer

    def configure_model(self) -> None:  # noqa: D102
        if self.compile_backbone and not self._compiled:
            self.backbone.compile()
            self._compiled = True

    def on_fit_start(self) -> None:
        """Recreate the perplexity state, which a ``validate`` run before ``fit`` made read-only."""
        self.val_perplexity.reset()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` token ids -> ``(B, T, vocab_size)`` logits."""
        return self.backbone(idx)

    def _loss(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, targets = batch[0], batch[1]
        if inputs.device.type == "cpu" or batch_idx == 0:  # free on the CPU; once per epoch elsewhere
            high = int(torch.maximum(inputs.max(), targets.max()))
            if high >= self.vocab_size or int(inputs.min()) < 0:
                raise ValueError(f"token id {high} is outside the model's vocabulary of {self.vocab_size}")
        logits = self(inputs)
        return logits, targets, F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:  # noqa: D102
        for transform in self.train_batch_transforms:
            batch = transform(batch)
        _, _, loss = self._loss(batch, batch_idx)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        logits, targets, loss = self._loss(batch, batch_idx)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        self.val_perplexity.update(logits.float(), targets)
        self.log("val/ppl", self.val_perplexity, prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        _, _, loss = self._loss(batch, batch_idx)
        self.log("test/loss", loss, sync_dist=True)

    @torch.no_grad()
    def generate(
        self,
        prompt: str | torch.Tensor,
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> str | torch.Tensor:
        """Continue ``prompt`` by sampling; text in, text out (through the tokenizer), or ids in, ids out.

        Args:
            prompt: Text, or ``(B, T)`` token ids.
            max_new_tokens: Tokens to add.
            temperature: Softmax temperature; 0 always picks the most likely token.
            top_k: Sample only among the ``top_k`` most likely tokens.
            seed: Seed of a private generator: the same seed gives the same sample.

        Raises:
            ValueError: For text without a tokenizer, or text the tokenizer cannot encode.
        """
        was_training = self.training
        self.eval()
        try:
            ids = prompt
            if isinstance(prompt, str):
                if self.tokenizer is None:
                    raise ValueError("this model has no tokenizer; pass token ids, or train it with a text data module")
                ids = torch.tensor([self.tokenizer.encode(prompt)], dtype=torch.long)
            ids = ids.to(self.device)
            generator = None
            if seed is not None:
                generator = torch.Generator(device=self.device).manual_seed(seed)
            out = generate(self.backbone, ids, max_new_tokens, temperature, top_k, generator)
        finally:
            self.train(was_training)
        if isinstance(prompt, str):
            assert self.tokenizer is not None
            return self.tokenizer.decode(out[0].tolist())
        return out

    def training_flops(self, batch: Any) -> int:
        """FLOPs of one training step (forward and backward) on token blocks shaped like ``batch[0]``, ``(B, T)``.

        Counted on a meta-device copy of the backbone (see :func:`zoo.tasks.flops.meta_training_flops`), for
        ``zoo.callbacks.ThroughputMonitor`` and the benchmarks' model-FLOPs utilisation.
        """
        shape = tuple(batch[0].shape)
        return meta_training_flops(self.backbone, lambda: (torch.zeros(shape, dtype=torch.long),))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        if self.tokenizer is not None:
            checkpoint["tokenizer"] = self.tokenizer.to_config()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        if "tokenizer" in checkpoint:
            self.tokenizer = tokenizer_from_config(checkpoint["tokenizer"])

    def configure_optimizers(self) -> Any:
        """AdamW-style groups (no decay on norms, biases, embeddings) and the scheduler."""
        return task_optimization_config(self)


def _resolve_backbone(
    backbone: str | nn.Module, vocab_size: int | None, block_size: int | None, kwargs: dict[str, Any] | None
) -> nn.Module:
    if isinstance(backbone, str):
        entry_for_task(backbone, "language_modeling")
        overrides = {k: v for k, v in (("vocab_size", vocab_size), ("block_size", block_size)) if v is not None}
        return create_model(backbone, **overrides, **(kwargs or {}))
    if kwargs:
        raise ValueError("backbone_kwargs apply to a backbone given by name, not to an nn.Module")
    for name, wanted in (("vocab_size", vocab_size), ("block_size", block_size)):
        own = getattr(backbone, name, None)
        if own is None:
            raise ValueError(f"{type(backbone).__name__} needs a {name} attribute to serve as a language model")
        if wanted is not None and own < wanted:
            raise ValueError(
                f"backbone {type(backbone).__name__} has {name}={own}, smaller than the {wanted} asked for"
            )
    return backbone
