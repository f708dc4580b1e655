"""A language model's loss, perplexity and bits per token and per byte, with bootstrap intervals.

Tokens of one text are not independent draws, so the intervals resample whole blocks (the data module's
sequences) rather than tokens: each resample's figure is its blocks' summed negative log-likelihood over their
summed tokens (or bytes). Bits per byte divides the total information by the UTF-8 bytes the target tokens
decode to, which makes models with different tokenizers comparable; with a character or byte tokenizer on
ASCII text it equals bits per character.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zoo.errors import UsageError
from zoo.evaluation.classification import Interval

__all__ = ["evaluate_language_model"]


def _block_sums(loaded: Any, data: Any, split: str, limit_batches: int | None) -> tuple[torch.Tensor, ...]:
    """Per block: summed NLL (nats), tokens and decoded bytes, each ``(blocks,)``."""
    from lightning.pytorch.utilities import move_data_to_device

    from zoo.evaluation.predictions import split_loader

    loader = split_loader(data, split)
    task = loaded.task
    tokenizer = getattr(task, "tokenizer", None)
    device = next(task.parameters()).device
    nll, tokens, nbytes = [], [], []
    with torch.inference_mode():
        for index, batch in enumerate(loader):
            if limit_batches is not None and index >= limit_batches:
                break
            inputs, targets = move_data_to_device((batch[0], batch[1]), device)
            logits = task(inputs).float()
            losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets.long(), reduction="none")
            nll.append(losses.double().sum(1).cpu())
            tokens.append(torch.full((targets.shape[0],), targets.shape[1], dtype=torch.float64))
            if tokenizer is not None:
                decoded = [len(tokenizer.decode(row.tolist()).encode("utf-8")) for row in targets.cpu()]
                nbytes.append(torch.tensor(decoded, dtype=torch.float64))
    if not nll:
        raise UsageError(f"the {split} split of {type(data).__name__} gave no batches")
    return torch.cat(nll), torch.cat(tokens), torch.cat(nbytes) if nbytes else torch.empty(0)


def evaluate_language_model(
    loaded: Any, data: Any, split: str = "val", resamples: int = 1000, seed: int = 0, level: float = 0.95,
    limit_batches: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Loss (nats per token), perplexity, bits per token and, with a tokenizer, bits per byte, with intervals."""
    nll, tokens, nbytes = _block_sums(loaded, data, split, limit_batches)
    blocks = nll.shape[0]
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, blocks, (resamples, blocks), generator=generator)
    weights = torch.zeros(resamples, blocks, dtype=torch.float64).scatter_add_(
        1, picks, torch.ones(resamples, blocks, dtype=torch.float64)
    )
    tail = (1 - level) / 2
    quantiles = torch.tensor([tail, 1 - tail], dtype=torch.float64)

    def ratio(denominator: torch.Tensor, scale: float = 1.0) -> Interval:
        value = float(nll.sum() / denominator.sum()) * scale
        low, high = (torch.quantile(weights @ nll / (weights @ denominator), quantiles) * scale).tolist()
        return Interval(value, low, high)

    loss = ratio(tokens)
    metrics = {
        "loss": loss,
        "perplexity": Interval(math.exp(loss.value), math.exp(loss.low), math.exp(loss.high)),
        "bits_per_token": ratio(tokens, 1 / math.log(2)),
    }
    if nbytes.numel():
        metrics["bits_per_byte"] = ratio(nbytes, 1 / math.log(2))
    return {
        "split": split,
        "blocks": blocks,
        "tokens": int(tokens.sum()),
        "bytes": int(nbytes.sum()) if nbytes.numel() else None,
        "metrics": {name: interval.as_dict() for name, interval in metrics.items()},
        "bootstrap": {"resamples": resamples, "seed": seed, "level": level, "unit": "block"},
    }
