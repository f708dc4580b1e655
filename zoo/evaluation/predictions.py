"""A classifier checkpoint's logits on one split of its data, through the task contract.

The task comes back from the checkpoint alone (:func:`zoo.checkpoints.load_checkpoint`); the data comes from
the recipe: the one passed, else the resolved recipe the checkpoint recorded under ``zoo fit``. Only its
``data`` section is built (not the model or a trainer). Each batch goes through the task's own
``logits_and_targets``, the same call its test step makes, so images, texts, the nodes of a graph (its test
mask) and batches of graphs are all read as in training.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from zoo.errors import ConfigError, UsageError

__all__ = ["Predictions", "build_data", "collect_predictions", "load_classifier", "split_loader"]

SPLITS = ("test", "val")


@dataclass(frozen=True)
class Predictions:
    """Logits ``(N, C)`` and targets ``(N,)`` of one split, with the class names when the data named them."""

    logits: torch.Tensor
    targets: torch.Tensor
    labels: tuple[str, ...] | None
    split: str


def load_classifier(
    ckpt_path: str | os.PathLike[str], weights: str = "ema", device: str = "cpu", language: bool = False,
    generative: bool = False,
) -> Any:  # fmt: skip
    """The checkpoint's task, checked to be a classifier (or a language or diffusion model, when allowed).

    Raises:
        UsageError: Naming the task when zoo evaluate cannot score it, and what to use for it instead.
    """
    from zoo.checkpoints import load_checkpoint
    from zoo.tasks.classification import ClassificationTask
    from zoo.tasks.diffusion import DiffusionModel
    from zoo.tasks.language_modeling import LanguageModel

    loaded = load_checkpoint(ckpt_path, weights=weights, device=device)  # type: ignore[arg-type]
    accepted = (ClassificationTask, *((LanguageModel,) if language else ()), *((DiffusionModel,) if generative else ()))
    if not isinstance(loaded.task, accepted):
        kind = type(loaded.task).__name__
        instead = {
            "DiffusionModel": "zoo evaluate reports its FID over sample sets, not this",
            "LanguageModel": "zoo evaluate reports its perplexity and bits per byte, not this",
        }.get(kind, "it has no classes to score")
        raise UsageError(
            f"{ckpt_path} holds a {kind}; zoo evaluate measures classifiers (image, text, node and graph "
            f"classification) and language models: {instead}"
        )
    return loaded


def build_data(recipe: str | os.PathLike[str] | None, loaded: Any, overrides: list[str]) -> Any:
    """The recipe's data module, with ``overrides`` (``--data.init_args.batch_size 256``) applied.

    Raises:
        ConfigError: When there is no recipe to read (none passed, none recorded), or it has no data section.
    """
    import lightning as L
    from jsonargparse import ArgumentParser

    if recipe is not None:
        source, text = str(recipe), Path(recipe).read_text()
    elif loaded.metadata.recipe is not None:
        source, text = f"the recipe recorded in {loaded.path}", loaded.metadata.recipe.text
    else:
        raise ConfigError(
            f"{loaded.path} records no recipe (it was not written by `zoo fit`); pass the one it was trained with: "
            "--config recipes/..."
        )
    config = yaml.safe_load(text) or {}
    section = config.get("data")
    if not isinstance(section, dict) or "class_path" not in section:
        raise ConfigError(f"{source} has no data section (data: {{class_path: ..., init_args: ...}})")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(L.LightningDataModule, "data", required=True)
    try:
        parsed = parser.parse_args(["--data", json.dumps(section), *overrides])
    except Exception as err:  # jsonargparse's ArgumentError names the key and the problem
        raise ConfigError(
            f"{source}: the data section does not build with {overrides or 'no overrides'}: {err}"
        ) from None
    return parser.instantiate_classes(parsed).data


def split_loader(data: Any, split: str) -> Any:
    """``data``'s loader of ``split`` (``test`` or ``val``), after preparing and setting it up for that split.

    Raises:
        UsageError: Naming the data module and the split it does not have.
    """
    data.prepare_data()
    data.setup("test" if split == "test" else "validate")
    try:
        return data.test_dataloader() if split == "test" else data.val_dataloader()
    except Exception as err:  # Lightning and zoo raise when the module has no such split
        other = "val" if split == "test" else "test"
        raise UsageError(
            f"{type(data).__name__} has no {split} split ({err}); score another (--split {other})"
        ) from None


def collect_predictions(loaded: Any, data: Any, split: str = "test", limit_batches: int | None = None) -> Predictions:
    """Run the task over ``split`` of ``data`` in inference mode, collecting logits and targets on the CPU.

    Raises:
        UsageError: For an unknown split, or one the data module does not have.
    """
    from lightning.pytorch.utilities import move_data_to_device

    if split not in SPLITS:
        raise UsageError(f"--split {split!r}: choose test or val")
    loader = split_loader(data, split)
    task = loaded.task
    device = next(task.parameters()).device
    logits, targets = [], []
    with torch.inference_mode():
        for index, batch in enumerate(loader):
            if limit_batches is not None and index >= limit_batches:
                break
            batch = data.on_after_batch_transfer(move_data_to_device(batch, device), 0)
            out, target = task.logits_and_targets(batch, "test" if split == "test" else "val")
            logits.append(out.float().cpu())
            targets.append(target.cpu())
    if not logits:
        raise UsageError(f"the {split} split of {type(data).__name__} gave no batches")
    target = torch.cat(targets)
    if target.ndim == 2:  # soft targets (mixup-style): score against the most probable class
        target = target.argmax(1)
    return Predictions(torch.cat(logits), target.long(), task.labels(), split)
