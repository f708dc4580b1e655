from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from zoo.data import TextCorpusDataModule
from zoo.optim import WarmupCosineLR
from zoo.tasks import LanguageModel

CORPUS = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS)
    return path


def _task(data: TextCorpusDataModule, **kwargs) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(
        "gpt_nano",
        vocab_size=data.vocab_size,
        block_size=data.block_size,
        optimizer=partial(torch.optim.AdamW, lr=3e-3, weight_decay=0.1),
        **kwargs,
    )


def test_loss_decreases_on_a_tiny_corpus(corpus: Path, trainer_factory) -> None:
    data = TextCorpusDataModule(path=str(corpus), block_size=32, batch_size=8)
    task = _task(data, lr_scheduler=partial(WarmupCosineLR, warmup_steps=5))
    trainer = trainer_factory(max_steps=60, num_sanity_val_steps=0)
    first = trainer_factory().validate(task, data, verbose=False)[0]["val/loss"]
    trainer.fit(task, data)
    last = trainer.validate(task, data, verbose=False)[0]
    assert last["val/loss"] < first - 1.0
    assert last["val/ppl"] == pytest.approx(torch.tensor(last["val/loss"]).exp().item(), rel=1e-3)


def test_no_weight_decay_on_norms_biases_and_embeddings(corpus: Path) -> None:
    data = TextCorpusDataModule(path=str(corpus), block_size=32)
    task = _task(data)
    decayed, exempt = task.configure_optimizers().param_groups
    names = {id(p): n for n, p in task.backbone.named_parameters()}
    exempt_names = {names[id(p)] for p in exempt["params"]}
    assert {"wte.weight", "wpe.weight", "ln_f.weight", "blocks.0.attn.qkv.bias"} <= exempt_names
    assert {names[id(p)] for p in decayed["params"]} >= {"blocks.0.attn.qkv.weight", "blocks.0.mlp.0.weight"}
    assert decayed["weight_decay"] == 0.1 and exempt["weight_decay"] == 0.0
    assert task.backbone.lm_head.weight is task.backbone.wte.weight  # tied embeddings


def test_generation_is_deterministic_under_a_seed_and_the_tokenizer_travels(
    corpus: Path, trainer_factory, tmp_path: Path
) -> None:
    data = TextCorpusDataModule(path=str(corpus), block_size=32, batch_size=8)
    task = _task(data)
    trainer = trainer_factory(max_steps=5, limit_val_batches=1)
    trainer.fit(task, data)
    one = task.generate("To be", max_new_tokens=40, temperature=1.0, top_k=10, seed=7)
    assert one.startswith("To be") and len(one) == len("To be") + 40
    assert task.generate("To be", max_new_tokens=40, temperature=1.0, top_k=10, seed=7) == one
    assert task.generate("To be", max_new_tokens=40, temperature=1.0, top_k=10, seed=8) != one

    path = tmp_path / "lm.ckpt"
    trainer.save_checkpoint(path)
    restored = LanguageModel.load_from_checkpoint(path, weights_only=True)
    assert restored.generate("To be", max_new_tokens=40, temperature=1.0, top_k=10, seed=7) == one

    command = [
        sys.executable, "-m", "zoo", "generate", "--ckpt_path", str(path), "--prompt", "To be",
        "--max_new_tokens", "40", "--temperature", "1.0", "--top_k", "10", "--seed", "7", "--device", "cpu",
    ]  # fmt: skip
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert printed.strip("\n") == one.strip("\n")
    failed = subprocess.run([*command[:-6], "--prompt", "To bé"], capture_output=True, text=True)
    assert failed.returncode == 2 and "'é'" in failed.stderr


def test_bad_inputs_are_named(corpus: Path) -> None:
    data = TextCorpusDataModule(path=str(corpus), block_size=32)
    task = _task(data)
    with pytest.raises(ValueError, match="context of 33 tokens is longer than the model's maximum block_size=32"):
        task(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match=f"token id 999 is outside the model's vocabulary of {data.vocab_size}"):
        task._loss((torch.full((1, 4), 999), torch.zeros(1, 4, dtype=torch.long)), 0)
    with pytest.raises(ValueError, match="not language modeling"):
        LanguageModel("resnet18_cifar")


def test_bf16_clipping_and_gradient_accumulation(corpus: Path, trainer_factory) -> None:
    data = TextCorpusDataModule(path=str(corpus), block_size=32, batch_size=4)
    task = _task(data)
    trainer = trainer_factory(max_steps=3, accumulate_grad_batches=2, precision="bf16-mixed", gradient_clip_val=1.0)
    trainer.fit(task, data)
    assert trainer.global_step == 3 and trainer.fit_loop.epoch_loop.batch_progress.total.completed == 6
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
