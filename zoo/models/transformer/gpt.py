"""A GPT-style decoder-only language model (GPT-2 architecture; Radford et al. 2019).

Pre-norm transformer blocks with causal self-attention through ``F.scaled_dot_product_attention`` (flash or
memory-efficient kernels where the device has them), learned position embeddings, and an output layer tied to
the token embedding. Initialisation follows GPT-2: normal(0, 0.02), with the residual projections scaled by
``1 / sqrt(2 * n_layer)``. The sizes registered below go from nanoGPT's CPU configuration to GPT-2 small.

Shapes:
    token ids ``(B, T)`` with ``T <= block_size`` -> logits ``(B, T, vocab_size)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from typing_extensions import override

from zoo.errors import ConfigError, DataError
from zoo.registry import InputSpec, register_model

__all__ = ["GPT", "Block", "CausalSelfAttention", "generate"]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position ``t`` attends to positions ``<= t`` only.

    Shapes:
        ``(B, T, C)`` -> ``(B, T, C)``, ``C = n_embd``, split into ``n_head`` heads of ``C / n_head``.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ConfigError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head = n_head
        self.dropout = dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_drop = nn.Dropout(dropout)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        # (B, T, 3C) -> 3 x (B, heads, T, C / heads)
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_head, width // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(batch, length, width)))


class Block(nn.Module):
    """Pre-norm block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))`` with a 4x GELU MLP."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd, bias=bias),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd, bias=bias),
            nn.Dropout(dropout),
        )

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer language model.

    Args:
        vocab_size: Number of token ids.
        block_size: Longest context the position embedding covers.
        n_layer: Number of blocks.
        n_head: Attention heads per block.
        n_embd: Width of the residual stream.
        dropout: Dropout on embeddings, attention weights and residual branches.
        bias: Biases in linear layers and LayerNorms (GPT-2 has them; without is slightly faster).

    Raises:
        ValueError: From ``forward``, for a context longer than ``block_size`` or ids outside the vocabulary.
    """

    def __init__(
        self,
        vocab_size: int = 50304,
        block_size: int = 1024,
        n_layer: int = 12,
        n_head: int = 12,
        n_embd: int = 768,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.n_layer = n_layer
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, dropout, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: the output layer is the embedding, transposed
        self.grad_checkpointing = False
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def no_weight_decay(self) -> set[str]:
        """Embeddings are exempt from weight decay (the tied output layer shares ``wte.weight``)."""
        return {"wte.weight", "wpe.weight"}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of keeping them (timm's API)."""
        self.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Layer groups in timm's format, for layer-wise learning-rate decay: embeddings, blocks, final norm."""
        return {"stem": r"^wte|^wpe", "blocks": [(r"^blocks\.(\d+)", None), (r"^ln_f", (99999,))]}

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` token ids -> ``(B, T, vocab_size)`` next-token logits."""
        length = idx.shape[-1]
        if length > self.block_size:
            raise DataError(
                f"context of {length} tokens is longer than the model's maximum block_size={self.block_size}"
            )
        positions = torch.arange(length, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(positions))
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.lm_head(self.ln_f(x))


@torch.no_grad()
def generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample ``max_new_tokens`` tokens after ``idx``, one at a time.

    Each step feeds the last ``block_size`` tokens, divides the final logits by ``temperature`` (0 picks the
    most likely token), keeps the ``top_k`` most likely tokens if given, and samples from the softmax with
    ``generator``, so a seeded generator makes sampling repeatable.

    Shapes:
        ``idx (B, T)`` -> ``(B, T + max_new_tokens)``.

    Raises:
        ValueError: For a negative ``max_new_tokens`` or ``temperature``, or a ``top_k`` below 1.
    """
    if max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0 (0 picks the most likely token), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be >= 1 (or None for every token), got {top_k}")
    block_size = getattr(model, "block_size", idx.shape[-1])
    for _ in range(max_new_tokens):
        logits = model(idx[:, -block_size:])[:, -1, :]
        if temperature == 0:
            next_id = logits.argmax(dim=-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            next_id = torch.multinomial(logits.softmax(dim=-1), num_samples=1, generator=generator)
        idx = torch.cat([idx, next_id], dim=1)
    return idx


_LANGUAGE_MODEL = {"family": "transformer", "tasks": ("language_modeling",)}


@register_model(
    **_LANGUAGE_MODEL,
    input_spec=InputSpec((64,), "int64"),
    defaults={"vocab_size": 65, "block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128},
    recipe="recipes/shakespeare/gpt_nano.yaml",
)
def gpt_nano(**kwargs: Any) -> GPT:
    """GPT with 4 layers, 128 wide, 4 heads, 64-token context (nanoGPT's CPU configuration)."""
    return GPT(**kwargs)


@register_model(
    **_LANGUAGE_MODEL,
    input_spec=InputSpec((256,), "int64"),
    defaults={"vocab_size": 65, "block_size": 256, "n_layer": 6, "n_head": 6, "n_embd": 384, "dropout": 0.2},
    recipe="recipes/shakespeare/gpt_mini.yaml",
)
def gpt_mini(**kwargs: Any) -> GPT:
    """GPT with 6 layers, 384 wide, 6 heads, 256-token context (nanoGPT's Shakespeare configuration)."""
    return GPT(**kwargs)


@register_model(
    **_LANGUAGE_MODEL,
    input_spec=InputSpec((1024,), "int64"),
    defaults={"vocab_size": 50304, "block_size": 1024, "n_layer": 12, "n_head": 12, "n_embd": 768},
)
def gpt2_124m(**kwargs: Any) -> GPT:
    """GPT-2 small: 12 layers, 768 wide, 12 heads, 1024-token context (124M parameters with GPT-2's vocab)."""
    return GPT(**kwargs)
