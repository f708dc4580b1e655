from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zoo.data import TextCorpusDataModule
from zoo.data.text import TokenBlocks


def test_shakespeare_split_blocks_and_targets(shared_data: Path) -> None:
    data = TextCorpusDataModule(block_size=64, batch_size=4)  # path relative to $ZOO_DATA
    assert data.vocab_size == 65  # nanoGPT's character vocabulary
    data.setup()
    assert data.split_at == int(1_115_394 * 0.9)
    inputs, targets = data.val_set[0]
    assert inputs.shape == targets.shape == (64,) and torch.equal(inputs[1:], targets[:-1])
    text = data.tokenizer.decode(inputs.tolist())
    assert data.text[data.split_at :].startswith(text)  # validation is the tail of the corpus, in order
    x, _ = next(iter(data.train_dataloader()))
    assert x.shape == (4, 64) and x.dtype == torch.int64


def test_training_blocks_shift_with_the_epoch_and_stay_reproducible() -> None:
    blocks = TokenBlocks(torch.arange(1000), block_size=10, seed=3)
    first, again, other_epoch = blocks[(0, 5)][0], blocks[(0, 5)][0], blocks[(1, 5)][0]
    assert torch.equal(first, again)
    assert not torch.equal(first, other_epoch)
    assert int(first[0]) % 10 == int(blocks[(0, 0)][0][0])  # contiguous blocks share one offset per epoch
    last_index = len(blocks) - 1
    for epoch in range(20):  # every offset leaves room for the shifted targets
        inputs, targets = blocks[(epoch, last_index)]
        assert len(inputs) == len(targets) == 10


@pytest.mark.parametrize("tokenizer", ["char", "byte", "bpe"])
def test_tokenizers_from_the_data_module(tokenizer: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    data = TextCorpusDataModule(path=str(corpus), tokenizer=tokenizer, bpe_vocab_size=300, block_size=16)
    data.setup()
    inputs, _ = data.train_set[(0, 0)]
    assert inputs.max() < data.vocab_size


def test_missing_and_empty_corpus_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"text corpus {tmp_path / 'nope.txt'} does not exist"):
        TextCorpusDataModule(path=str(tmp_path / "nope.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    data = TextCorpusDataModule(path=str(empty))  # read when the vocabulary is first needed, not at creation
    with pytest.raises(ValueError, match=f"text corpus {empty} is empty"):
        _ = data.vocab_size
    short = tmp_path / "short.txt"
    short.write_text("hello world")
    with pytest.raises(ValueError, match="too few for blocks of 64"):
        TextCorpusDataModule(path=str(short), block_size=64).setup()
