"""Data modules read nothing at creation, and processes that fill one cache at once (DDP ranks) take turns."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from zoo.data import PlanetoidDataModule, TextCorpusDataModule

CORPUS = "".join(f"line {i}: the quick brown fox jumps over the lazy dog {i % 7}\n" for i in range(400))


def _cache_files(cache: Path) -> set[str]:
    return {str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()}


def test_creating_a_module_reads_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ZOO_CACHE", str(cache))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    text = TextCorpusDataModule(path=str(corpus), tokenizer="bpe", bpe_vocab_size=300)
    graph = PlanetoidDataModule("Cora")
    assert "text" not in vars(text) and "graph" not in vars(graph) and _cache_files(cache) == set()
    assert text.data_facts.vocab_size == text.tokenizer.vocab_size <= 300  # read when first asked for
    assert graph.data_facts.num_classes == 7 and graph.data_facts.in_channels == 1433
    assert any(name.endswith(".json") for name in _cache_files(cache / "tokenizers"))


def _fill(cache: str, corpus: str, queue: multiprocessing.Queue) -> None:
    os.environ["ZOO_CACHE"] = cache
    text = TextCorpusDataModule(path=corpus, tokenizer="bpe", bpe_vocab_size=300)
    graph = PlanetoidDataModule("Cora")
    queue.put((text.tokenizer.to_config()["json"], int(graph.graph.num_nodes)))


def test_two_processes_filling_the_same_caches_at_once_agree(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_fill, args=(str(tmp_path / "cache"), str(corpus), queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert results[0] == results[1] and results[0][1] == 2708
    leftovers = [name for name in _cache_files(tmp_path / "cache") if name.endswith(".tmp") or "/.raw." in name]
    assert leftovers == []
