"""Labelled text from CSV, TSV or JSON-lines files, tokenised for an encoder."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.data.base import ZooDataModule, check_sampler
from zoo.data.fingerprint import SplitContent, hash64
from zoo.data.paths import cache_dir, cache_lock, data_root
from zoo.errors import ConfigError, DataError, MissingFileError
from zoo.files import atomic_write

__all__ = ["TextClassificationDataModule", "encode_texts", "read_labelled_text"]

_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def read_labelled_text(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    """Texts and labels (as strings) from a ``.csv``, ``.tsv`` or ``.jsonl`` file.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is empty, of another format, or lacks one of the columns (the message lists those it
            has).
    """
    if not path.is_file():
        raise MissingFileError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8", newline="") as f:
        if suffix in (".csv", ".tsv"):
            rows: list[dict[str, Any]] = list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
        elif suffix in (".jsonl", ".json"):
            rows = [json.loads(line) for line in f if line.strip()]
        else:
            raise ConfigError(f"data file {path}: expected .csv, .tsv or .jsonl, got {suffix or 'no suffix'}")
    if not rows:
        raise DataError(f"data file {path} has no rows")
    for column in (text_column, label_column):
        if column not in rows[0]:
            raise DataError(f"data file {path} has no {column!r} column; its columns are {sorted(rows[0])}")
    for line, row in enumerate(rows, start=2 if suffix != ".jsonl" else 1):
        if row.get(text_column) is None or row.get(label_column) in (None, ""):
            raise DataError(f"data file {path}, row {line}: empty {text_column!r} or {label_column!r}")
    return [str(r[text_column]) for r in rows], [str(r[label_column]) for r in rows]


class _EncodedTexts(Dataset):
    """Token ids and a label per text; accepts plain or ``(epoch, index)`` keys."""

    def __init__(self, ids: list[list[int]], labels: list[int]) -> None:
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[list[int], int]:
        index = key[1] if isinstance(key, tuple) else key
        return self.ids[index], self.labels[index]

    def content(self) -> SplitContent:
        """Each text's token ids and label, for the data fingerprint."""
        checksums = [
            hash64(np.asarray(ids, dtype=np.int64).tobytes(), str(label))
            for ids, label in zip(self.ids, self.labels, strict=True)
        ]
        return SplitContent(np.array(checksums, dtype=np.uint64), np.asarray(self.labels, dtype=np.int64))


class TextClassificationDataModule(ZooDataModule):
    """Text classification data from files of ``text,label`` rows (CSV, TSV or JSON lines).

    The label names are the distinct labels of the training file, sorted (numerically when they are all
    integers); their index is the class. The tokenizer is either the one saved with a model
    (``tokenizer="<directory>"``, read with ``AutoTokenizer.from_pretrained(..., local_files_only=True)``) or,
    for an encoder trained from scratch, a WordPiece vocabulary learned from the training texts with Hugging
    Face ``tokenizers`` (cached under ``$ZOO_CACHE``). Texts are truncated to ``max_length`` tokens and padded
    per batch to the longest.

    Args:
        train_file: Training file, absolute or relative to ``root`` (default ``$ZOO_DATA``, else ``~/.cache/zoo``).
        val_file: Validation file; without one, ``val_split`` of the training rows are held out (seeded).
        test_file: Test file, if any.
        root: Folder that relative paths start from.
        text_column: Column of the text.
        label_column: Column of the label.
        tokenizer: Directory of a saved tokenizer, or ``None`` to train a WordPiece one.
        vocab_size: Size of a trained WordPiece vocabulary.
        max_length: Longest tokenised text, special tokens included.
        val_split: Share of training rows held out when there is no validation file.
        split_seed: Seed of that split.
        batch_size, eval_batch_size, num_workers, pin_memory, seed: See :class:`zoo.data.base.ZooDataModule`.
        sampler: ``random`` or ``balanced`` (each class drawn about equally often; for skewed classes).

    Batches:
        ``{"input_ids": (B, L), "attention_mask": (B, L), "labels": (B,)}``, int64.

    The training file is read, and a tokenizer trained, when the label names or the vocabulary are first asked
    for (``zoo fit`` links them into the task before training), not when the module is created.

    Raises:
        FileNotFoundError: For a missing file or tokenizer directory (when the module is created).
        ValueError: For a missing column or an empty file (when the training file is read), or a validation/test
            label absent from training (in ``setup``).
    """

    def __init__(
        self,
        train_file: str,
        val_file: str | None = None,
        test_file: str | None = None,
        root: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        tokenizer: str | None = None,
        vocab_size: int = 8000,
        max_length: int = 128,
        val_split: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int | None = 0,
        pin_memory: bool | None = None,
        seed: int | None = None,
        sampler: Literal["random", "balanced"] = "random",
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, pin_memory, seed)
        self.sampler = check_sampler(sampler)
        base = data_root(root)
        self.files = {
            split: (Path(f) if Path(f).is_absolute() else base / f) if f is not None else None
            for split, f in (("train", train_file), ("val", val_file), ("test", test_file))
        }
        for path in self.files.values():
            if path is not None and not path.is_file():
                raise MissingFileError(f"data file {path} does not exist")
        self.tokenizer_dir = None
        if tokenizer is not None:
            self.tokenizer_dir = Path(tokenizer) if Path(tokenizer).is_absolute() else base / tokenizer
            if not self.tokenizer_dir.is_dir():
                raise MissingFileError(f"tokenizer directory {self.tokenizer_dir} does not exist")
        self.columns = (text_column, label_column)
        self.max_length = max_length
        self.wordpiece_size = vocab_size
        if not 0 < val_split < 1:
            raise ConfigError(f"val_split must be a share in (0, 1) of the training rows, got {val_split}")
        self.val_split = val_split
        self.split_seed = split_seed
        self.collate_fn = self._collate

    @cached_property
    def _training_rows(self) -> tuple[list[str], list[str]]:
        return read_labelled_text(self.files["train"], *self.columns)

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        """The distinct labels of the training file, sorted (numerically when all are integers)."""
        return _sorted_labels(self._training_rows[1])

    @property
    def num_classes(self) -> int:
        """Number of classes (linked into the task)."""
        return len(self.class_names)

    @property
    def vocab_size(self) -> int:
        """Token ids the tokenizer produces (linked into a from-scratch encoder)."""
        return len(self.tokenizer)

    @cached_property
    def tokenizer(self) -> Any:
        """The saved tokenizer, or a WordPiece one trained on the training texts once and cached."""
        from transformers import AutoTokenizer, PreTrainedTokenizerFast

        if self.tokenizer_dir is not None:
            return AutoTokenizer.from_pretrained(str(self.tokenizer_dir), local_files_only=True)
        texts, size = self._training_rows[0], self.wordpiece_size
        key = hashlib.sha1(f"{size}|".encode() + "\n".join(texts).encode()).hexdigest()[:16]
        cached = cache_dir("tokenizers") / f"wordpiece{size}-{key}.json"
        with cache_lock(cached):  # DDP ranks: one trains, the others read its file
            if not cached.is_file():
                _train_wordpiece(texts, size, cached)
        return PreTrainedTokenizerFast(
            tokenizer_file=str(cached), unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
            sep_token="[SEP]", mask_token="[MASK]",
        )  # fmt: skip

    def _encode(self, split: str) -> _EncodedTexts | None:
        path = self.files[split]
        if path is None:
            return None
        texts, labels = read_labelled_text(path, *self.columns)
        index = {name: i for i, name in enumerate(self.class_names)}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise DataError(f"data file {path}: labels {unknown} do not occur in the training file")
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        return _EncodedTexts(ids, [index[label] for label in labels])

    def setup(self, stage: str | None = None) -> None:
        """Tokenise the files and hold out a validation share when there is no validation file."""
        train = self._encode("train")
        assert train is not None
        val = self._encode("val")
        if val is None:
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.split_seed)).tolist()
            n_val = max(1, round(self.val_split * len(train)))
            held, kept = sorted(order[:n_val]), sorted(order[n_val:])
            val = _EncodedTexts([train.ids[i] for i in held], [train.labels[i] for i in held])
            train = _EncodedTexts([train.ids[i] for i in kept], [train.labels[i] for i in kept])
        self.train_set, self.val_set, self.test_set = train, val, self._encode("test")

    def _collate(self, items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        length = max(len(ids) for ids, _ in items)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(items), length), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(items), length), dtype=torch.long)
        for row, (ids, _) in enumerate(items):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": torch.tensor([label for _, label in items], dtype=torch.long),
        }


def _sorted_labels(labels: Sequence[str]) -> tuple[str, ...]:
    distinct = set(labels)
    if all(label.lstrip("-").isdigit() for label in distinct):
        return tuple(sorted(distinct, key=int))
    return tuple(sorted(distinct))


def _train_wordpiece(texts: Sequence[str], vocab_size: int, path: Path) -> None:
    """Train a BERT-style WordPiece tokenizer on ``texts`` and save it to ``path`` (written atomically)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.decoder = decoders.WordPiece()
    wordpiece.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=_SPECIAL_TOKENS, show_progress=False)
    )
    cls_id, sep_id = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    with atomic_write(path, text=True) as f:
        f.write(wordpiece.to_str())


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> ``(input_ids, attention_mask)``, ``(N, L)`` each, with a Hugging Face ``tokenizers.Tokenizer``.

    Special tokens are added, sequences truncated to ``max_length`` and padded to the longest, as a text
    classifier's data module encodes them (export's ``predict`` and ``zoo explain`` use it).
    """
    tokenizer.enable_truncation(int(max_length))
    pad = next((t for t in ("[PAD]", "<pad>") if tokenizer.token_to_id(t) is not None), None)
    pad_id = tokenizer.token_to_id(pad) if pad is not None else 0
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad or "[PAD]")
    encoded = tokenizer.encode_batch(list(texts))
    ids = torch.tensor([e.ids for e in encoded], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in encoded], dtype=torch.long)
    return ids, mask
