from __future__ import annotations

import pytest

from zoo.data.tokenizers import BPETokenizer, ByteTokenizer, CharTokenizer, tokenizer_from_config

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


@pytest.mark.parametrize(
    "tokenizer",
    [CharTokenizer.from_text(TEXT), ByteTokenizer(), BPETokenizer.train([TEXT * 20], vocab_size=300)],
    ids=["char", "byte", "bpe"],
)
def test_round_trip_and_config_round_trip(tokenizer) -> None:
    ids = tokenizer.encode(TEXT)
    assert tokenizer.decode(ids) == TEXT
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    rebuilt = tokenizer_from_config(tokenizer.to_config())
    assert rebuilt.encode(TEXT) == ids and rebuilt.vocab_size == tokenizer.vocab_size


def test_bpe_compresses_and_byte_level_handles_any_text() -> None:
    bpe = BPETokenizer.train([TEXT * 20], vocab_size=300)
    assert len(bpe.encode(TEXT)) < len(TEXT)
    assert bpe.decode(bpe.encode("naïve — 東京")) == "naïve — 東京"
    assert ByteTokenizer().decode(ByteTokenizer().encode("naïve — 東京")) == "naïve — 東京"


def test_unknown_characters_are_named() -> None:
    tokenizer = CharTokenizer.from_text(TEXT)
    with pytest.raises(ValueError, match=r"characters \['Z', 'é'\] are not in the character vocabulary.*position 3"):
        tokenizer.encode("Spe\u00e9Z")


def test_unknown_tokenizer_type_is_named() -> None:
    with pytest.raises(ValueError, match="unknown tokenizer type 'wordpiece'"):
        tokenizer_from_config({"type": "wordpiece"})
