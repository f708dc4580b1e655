"""Causal language modelling: next-token prediction with any decoder registered for it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.text import Perplexity
from typing_extensions import override

from zoo.data.facts import DataFacts, tokenizer_spec
from zoo.data.tokenizers import Tokenizer, tokenizer_from_config
from zoo.errors import ConfigError, DataError
from zoo.models.transformer.gpt import generate
from zoo.tasks.base import CompileOption, ZooTask, backbone_attribute
from zoo.tasks.signature import InferenceSignature, TensorSpec, TokenInput

__all__ = ["LanguageModel"]


class LanguageModel(ZooTask):
    """Train a decoder to predict each next token; evaluate its loss and perplexity; sample from it.

    Batches are ``(inputs, targets)`` of token ids, ``(B, T)`` each, with ``targets`` the inputs shifted by one
    (``zoo.data.TextCorpusDataModule`` makes them). The loss is the mean cross-entropy over all ``B * T``
    positions; ``val/ppl`` is its exponential, accumulated over the whole validation set.

    Optimisation follows GPT practice: AdamW whose decay skips norm weights, biases and embeddings (the model's
    ``no_weight_decay()``), warm-up then cosine (``zoo.optim.WarmupCosineLR``), and bf16, gradient clipping and
    accumulation from the trainer (``precision``, ``gradient_clip_val``, ``accumulate_grad_batches``).

    The tokenizer of the data module is kept (one of its data facts) and stored in every checkpoint, so
    ``LanguageModel.load_from_checkpoint(path).generate("ROMEO:")`` (or ``zoo generate``) needs nothing else.

    Args:
        backbone: Registry name of a language model (``"gpt_nano"``, ``"gpt_mini"``, ``"gpt2_124m"``) or a module
            mapping ``(B, T)`` ids to ``(B, T, V)`` logits with ``vocab_size`` and ``block_size`` attributes.
        vocab_size: Number of token ids; linked from the data module by ``zoo fit``. Defaults to the model's.
        block_size: Longest context; linked from the data module's block size. Defaults to the model's.
        backbone_kwargs: Extra builder arguments for a named backbone (``dropout``, ``n_layer``, ...).
        pretrained: Start from a weight card of the named backbone: its tag (``"cifar10"``, see ``zoo weights``)
            or ``True`` for the first; another class count keeps a fresh head. Same as ``backbone_kwargs:
            {pretrained: TAG}``.
        optimizer, lr_scheduler, lr_scheduler_interval, compile, layer_decay, activation_checkpointing: See
            :class:`~zoo.tasks.ZooTask`.

    Shapes:
        ``forward``: ``(B, T)`` int64 -> ``(B, T, vocab_size)`` logits.
    """

    registry_task = "language_modeling"
    default_monitor = ("val/loss", "min")

    def __init__(
        self,
        backbone: str | nn.Module = "gpt_mini",
        vocab_size: int | None = None,
        block_size: int | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        pretrained: bool | str | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        compile: CompileOption = False,
        layer_decay: float | None = None,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__(
            backbone,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            lr_scheduler_interval=lr_scheduler_interval,
            compile=compile,
            activation_checkpointing=activation_checkpointing,
            layer_decay=layer_decay,
        )
        self.backbone = self.resolve_backbone(
            backbone, backbone_kwargs, vocab_size=vocab_size, block_size=block_size, pretrained=pretrained
        )
        purpose = "a language model"
        self.vocab_size: int = backbone_attribute(self.backbone, "vocab_size", vocab_size, purpose, at_least=True)
        self.block_size: int = backbone_attribute(self.backbone, "block_size", block_size, purpose, at_least=True)
        self.val_perplexity = Perplexity()

    @property
    def tokenizer(self) -> Tokenizer | None:
        """The data's tokenizer (a data fact), which ``generate`` uses for text."""
        return self.data_facts.tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer: Tokenizer | None) -> None:
        self.data_facts = dataclasses.replace(self.data_facts, tokenizer=tokenizer)

    @override
    def adopt_data_facts(self, facts: DataFacts) -> None:
        """Adopt the data module's tokenizer, checking that the model covers its vocabulary."""
        if facts.vocab_size is not None and facts.vocab_size > self.vocab_size:
            raise DataError(
                f"the tokenizer has {facts.vocab_size} tokens but the model's vocab_size is {self.vocab_size}"
            )
        super().adopt_data_facts(facts)

    @override
    def on_fit_start(self) -> None:
        """Recreate the perplexity state, which a ``validate`` run before ``fit`` made read-only."""
        self.val_perplexity.reset()

    @override
    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` token ids -> ``(B, T, vocab_size)`` logits."""
        return self.backbone(idx)

    def _loss(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, targets = batch[0], batch[1]
        if self.check_now(inputs, batch_idx):
            high = int(torch.maximum(inputs.max(), targets.max()))
            if high >= self.vocab_size or int(inputs.min()) < 0:
                raise DataError(f"token id {high} is outside the model's vocabulary of {self.vocab_size}")
        logits = self(inputs)
        return logits, targets, F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())

    @override
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        for transform in self.train_batch_transforms:
            batch = transform(batch)
        _, _, loss = self._loss(batch, batch_idx)
        self.log_training_loss(loss)
        return loss

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        logits, targets, loss = self._loss(batch, batch_idx)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        self.val_perplexity.update(logits.float(), targets)
        self.log("val/ppl", self.val_perplexity, prog_bar=True)

    @override
    def test_step(self, batch: Any, batch_idx: int) -> None:
        _, _, loss = self._loss(batch, batch_idx)
        self.log("test/loss", loss, sync_dist=True)

    @override
    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Next-token logits ``(B, T, vocab_size)`` for the inputs of a batch (``(inputs, targets)`` or ids)."""
        return self(batch[0] if isinstance(batch, list | tuple) else batch)

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
                    raise ConfigError(
                        "this model has no tokenizer; pass token ids, or train it with a text data module"
                    )
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

    @override
    def flops_inputs(self, batch: Any) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(tuple(batch[0].shape), dtype=torch.long),)

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Read the stored data facts; checkpoints of zoo 0.1 kept the tokenizer under its own key."""
        super().on_load_checkpoint(checkpoint)
        if self.tokenizer is None and "tokenizer" in checkpoint:
            self.tokenizer = tokenizer_from_config(checkpoint["tokenizer"])

    # Inference -----------------------------------------------------------------------------------------------

    @override
    def inference_signature(self) -> InferenceSignature:
        block, ids = self.block_size, f"token ids in [0, {self.vocab_size})"
        return InferenceSignature(
            task=self.registry_task,
            inputs=(TensorSpec("input_ids", ("batch", "tokens"), "int64", ids, {"tokens": block}),),
            outputs=(
                TensorSpec("logits", ("batch", "tokens", self.vocab_size), "float32", "next-token scores per position"),
            ),
            preprocessing=TokenInput(tokenizer_spec(self.tokenizer), block),
            example_sizes={"batch": 2, "tokens": min(16, block - 1)},
            check_sizes=({"batch": 1, "tokens": min(5, block)}, {"batch": 3, "tokens": block}),
        )

    @override
    def example_inputs(self, sizes: Mapping[str, int], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        return (torch.randint(0, self.vocab_size, (sizes["batch"], sizes["tokens"]), generator=generator),)
