"""Plain-text corpora for language modelling, cut into contiguous token blocks."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset
from typing_extensions import override

from zoo.data.base import ZooDataModule
from zoo.data.fingerprint import SplitContent, hash64
from zoo.data.paths import cache_dir, cache_lock, data_root
from zoo.data.sampling import sample_seed
from zoo.data.tokenizers import BPETokenizer, ByteTokenizer, CharTokenizer, Tokenizer, tokenizer_from_config
from zoo.errors import ConfigError, DataError, MissingFileError
from zoo.files import atomic_write

__all__ = ["TextCorpusDataModule", "TokenBlocks"]


class TokenBlocks(Dataset):
    """Contiguous, non-overlapping blocks of a token stream, each with its next-token targets.

    With ``(epoch, index)`` keys (training), the blocks of an epoch start at ``index * block_size + offset``
    where ``offset`` in ``[0, block_size)`` is drawn from ``(seed, epoch)``: every epoch cuts the corpus at
    other places, and an epoch is still reproducible (and resumable) from its number alone. Plain index keys
    (evaluation) use offset 0.

    Args:
        tokens: ``(N,)`` integer token ids.
        block_size: Tokens per input block ``T``.
        seed: Seed of the per-epoch offsets.

    Returns (per item):
        ``(inputs, targets)``: ``(T,)`` int64 each, ``targets[t] = inputs[t + 1]`` in the stream.
    """

    def __init__(self, tokens: torch.Tensor, block_size: int, seed: int = 0) -> None:
        if len(tokens) < 2 * block_size + 1:
            raise DataError(
                f"{len(tokens)} tokens are too few for blocks of {block_size} (need at least {2 * block_size + 1}); "
                "use a smaller block_size or a larger corpus"
            )
        self.tokens = tokens
        self.block_size = block_size
        self.seed = seed
        # Room for the largest offset (block_size - 1) plus the one-token shift of the targets.
        self._count = (len(tokens) - block_size) // block_size

    def __len__(self) -> int:
        return self._count

    def content(self) -> SplitContent:
        """The token stream, for the data fingerprint: its order is its content, so one checksum for all."""
        stream = self.tokens.contiguous().numpy()
        return SplitContent(np.array([hash64(str(stream.dtype), stream.tobytes())], dtype=np.uint64), items=len(self))

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(key, tuple):
            epoch, index = key
            offset = sample_seed(self.seed, epoch, 2**32) % self.block_size
        else:
            index, offset = key, 0
        start = index * self.block_size + offset
        chunk = self.tokens[start : start + self.block_size + 1].long()
        return chunk[:-1], chunk[1:]


TINY_SHAKESPEARE = "tinyshakespeare/input.txt"
_TINY_SHAKESPEARE_LICENSE = "Tiny Shakespeare (Karpathy's char-rnn): Shakespeare's works, public domain"


class TextCorpusDataModule(ZooDataModule):
    """A plain-text file, tokenised, split into a training head and a validation tail, served as blocks.

    The file is read as UTF-8 when the vocabulary size is first asked for (``zoo fit`` links it into the model
    before training), not when the module is created. Tokenisation is by character (the corpus's own
    characters, as nanoGPT's character level), by byte (any text, 256 ids) or by byte-level BPE trained on the
    training text with Hugging Face ``tokenizers`` and cached under ``$ZOO_CACHE``. The tokenizer travels with
    checkpoints (the ``LanguageModel`` task stores it), so ``zoo generate`` needs only the checkpoint.

    Args:
        path: The corpus file, absolute or relative to ``root`` (default ``$ZOO_DATA``, else ``~/.cache/zoo``).
        root: Folder that ``path`` is relative to.
        tokenizer: ``"char"``, ``"byte"`` or ``"bpe"``.
        bpe_vocab_size: Vocabulary size of a BPE tokenizer.
        block_size: Tokens per training example (the model's context length, linked into it).
        val_fraction: Share of the corpus, taken from its end, for validation (nanoGPT's split: the last 10%).
        batch_size, eval_batch_size, num_workers, pin_memory, seed: See :class:`zoo.data.base.ZooDataModule`.
            Workers default to 0: a block is a slice of a tensor, cheaper than sending it between processes.

    Batches:
        ``(inputs, targets)``: ``(B, block_size)`` int64 each.

    Raises:
        FileNotFoundError: If the corpus does not exist (when the module is created).
        ValueError: If it is empty (when it is first read), or too short for the split and block size (in
            ``setup``).
    """

    def __init__(
        self,
        path: str = TINY_SHAKESPEARE,
        root: str | None = None,
        tokenizer: Literal["char", "byte", "bpe"] = "char",
        bpe_vocab_size: int = 2048,
        block_size: int = 256,
        val_fraction: float = 0.1,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int | None = 0,
        pin_memory: bool | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, pin_memory, seed)
        if tokenizer not in ("char", "byte", "bpe"):
            raise ConfigError(f"tokenizer must be 'char', 'byte' or 'bpe', got {tokenizer!r}")
        if not 0 < val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if block_size < 1:
            raise ConfigError(f"block_size must be >= 1, got {block_size}")
        self.path = Path(path) if Path(path).is_absolute() else data_root(root) / path
        if not self.path.is_file():
            raise MissingFileError(f"text corpus {self.path} does not exist")
        self.block_size = block_size
        self.val_fraction = val_fraction
        self.tokenizer_kind = tokenizer
        self.bpe_vocab_size = bpe_vocab_size

    @classmethod
    @override
    def license_of(cls, init_args: Mapping[str, Any]) -> str:
        """Tiny Shakespeare's when the corpus is it (the default); any other corpus is the user's to state."""
        path = Path(str(init_args.get("path") or TINY_SHAKESPEARE))
        return _TINY_SHAKESPEARE_LICENSE if path.parts[-2:] == Path(TINY_SHAKESPEARE).parts else ""

    @cached_property
    def text(self) -> str:
        """The corpus, read once."""
        data = self.path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(
                f"text corpus {self.path} is not UTF-8 text: byte {err.start} is 0x{data[err.start]:02x} "
                f"({err.reason}); convert it to UTF-8, or check that it is the text file you meant"
            ) from None
        if not text.strip():
            raise DataError(f"text corpus {self.path} is empty")
        return text

    @property
    def split_at(self) -> int:
        """Character offset where the validation tail begins."""
        return int(len(self.text) * (1 - self.val_fraction))

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer (a data fact); a BPE one is trained on the training text once and cached."""
        if self.tokenizer_kind == "byte":
            return ByteTokenizer()
        if self.tokenizer_kind == "char":
            return CharTokenizer.from_text(self.text)
        size = self.bpe_vocab_size
        key = hashlib.sha1(f"{self.split_at}|{size}|".encode() + self.text.encode()).hexdigest()[:16]
        cached = cache_dir("tokenizers") / f"{self.path.stem}-bpe{size}-{key}.json"
        with cache_lock(cached):  # DDP ranks: one trains, the others read its file
            if cached.is_file():
                return tokenizer_from_config({"type": "bpe", "json": cached.read_text()})
            trained = BPETokenizer.train([self.text[: self.split_at]], size)
            with atomic_write(cached, text=True) as f:
                f.write(trained.to_config()["json"])
        return trained

    @property
    def vocab_size(self) -> int:
        """Number of token ids (linked into the model)."""
        return self.tokenizer.vocab_size

    def setup(self, stage: str | None = None) -> None:
        """Tokenise the corpus and cut the training and validation blocks."""
        train = torch.tensor(self.tokenizer.encode(self.text[: self.split_at]), dtype=torch.int32)
        val = torch.tensor(self.tokenizer.encode(self.text[self.split_at :]), dtype=torch.int32)
        self.train_set = TokenBlocks(train, self.block_size, seed=self.seed)
        self.val_set = TokenBlocks(val, self.block_size)
