"""Tokenizers for language modelling: characters, bytes, or a BPE trained locally with HF ``tokenizers``.

Every tokenizer turns text into token ids and back, and describes itself as a plain dictionary
(:meth:`to_config`) that is stored in checkpoints, so a checkpoint can be sampled from without the corpus.
Nothing is downloaded: a BPE vocabulary is trained on the corpus at hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from typing_extensions import override

from zoo.errors import ConfigError, DataError

__all__ = ["BPETokenizer", "ByteTokenizer", "CharTokenizer", "Tokenizer", "tokenizer_from_config"]


class Tokenizer(Protocol):
    """What the language-modelling task and data module need from a tokenizer."""

    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; raises ``ValueError`` naming what it cannot encode."""
        ...

    def decode(self, ids: Iterable[int]) -> str:
        """The text of token ids."""
        ...

    def to_config(self) -> dict[str, Any]:
        """A plain dictionary that :func:`tokenizer_from_config` turns back into the same tokenizer."""
        ...


class CharTokenizer(Tokenizer):
    """One token per distinct character of the corpus, in sorted order (nanoGPT's character level).

    Args:
        vocab: The characters, each once; ``CharTokenizer.from_text(corpus)`` builds it from a corpus.

    Raises:
        ValueError: From :meth:`encode`, for characters outside the vocabulary (it names them and where).
    """

    def __init__(self, vocab: str) -> None:
        if len(set(vocab)) != len(vocab) or not vocab:
            raise ConfigError("a character vocabulary needs distinct characters, at least one")
        self.vocab = vocab
        self.vocab_size = len(vocab)
        self._ids = {ch: i for i, ch in enumerate(vocab)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The vocabulary of every character in ``text``."""
        return cls("".join(sorted(set(text))))

    @override
    def encode(self, text: str) -> list[int]:
        try:
            return [self._ids[ch] for ch in text]
        except KeyError:
            unknown = sorted({ch for ch in text if ch not in self._ids})
            first = next(i for i, ch in enumerate(text) if ch not in self._ids)
            raise DataError(
                f"characters {unknown!r} are not in the character vocabulary ({self.vocab_size} characters); "
                f"first at position {first}. Use tokenizer 'byte' or 'bpe' for open-ended text."
            ) from None

    @override
    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.vocab[i] for i in ids)

    @override
    def to_config(self) -> dict[str, Any]:
        return {"type": "char", "vocab": self.vocab}


class ByteTokenizer(Tokenizer):
    """The 256 byte values of the UTF-8 encoding: any text, no vocabulary to build."""

    vocab_size = 256

    @override
    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    @override
    def decode(self, ids: Iterable[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    @override
    def to_config(self) -> dict[str, Any]:
        return {"type": "byte"}


class BPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2's scheme) trained on local text with Hugging Face ``tokenizers``.

    Args:
        tokenizer: A ``tokenizers.Tokenizer``; :meth:`train` makes one.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        """Learn ``vocab_size`` tokens (256 bytes plus merges) from ``texts``."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        tokenizer = HFTokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
        return cls(tokenizer)

    @override
    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text).ids

    @override
    def decode(self, ids: Iterable[int]) -> str:
        return self._tokenizer.decode(list(ids))

    @override
    def to_config(self) -> dict[str, Any]:
        return {"type": "bpe", "json": self._tokenizer.to_str()}


def tokenizer_from_config(config: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`to_config` output (as stored in checkpoints).

    Raises:
        ValueError: For an unknown tokenizer type.
    """
    kind = config.get("type")
    if kind == "char":
        return CharTokenizer(config["vocab"])
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        return BPETokenizer(HFTokenizer.from_str(config["json"]))
    raise ConfigError(f"unknown tokenizer type {kind!r}; expected 'char', 'byte' or 'bpe'")
