"""WordPiece: round trips, repeatable ids, and a vocab.txt that transformers' BertTokenizer reads."""

import pytest
from transformers import BertTokenizer

from attnlab.data import Tokenizer, WordPieceTokenizer
from attnlab.errors import AttnlabError

TEXTS = [
    "Return the list of items in the queue, sorted by priority.",
    "The decoder raises a ValueError when the document is not valid JSON.",
    "Items are compared with their keys; equal keys keep their order.",
    "A lock protects the shared state of the queue between threads.",
] * 5
SAMPLE = "The queue raises a ValueError, unless items are sorted."


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.train(TEXTS, vocab_size=150, min_freq=1)


def test_special_ids_and_round_trip(tokenizer):
    assert [tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id] == [0, 1, 2, 3, 4]
    ids = tokenizer.encode(SAMPLE)
    assert tokenizer.decode(ids) == "the queue raises a valueerror, unless items are sorted."
    assert any(t.startswith("##") for t in tokenizer.tokens(SAMPLE))


def test_save_load_and_huggingface_read_the_same_ids(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "tok")
    loaded = Tokenizer.load(tmp_path / "tok")
    assert isinstance(loaded, WordPieceTokenizer)
    assert loaded.encode(SAMPLE) == tokenizer.encode(SAMPLE)
    with_cls = [tokenizer.cls_id, *tokenizer.encode(SAMPLE), tokenizer.sep_id]
    assert BertTokenizer.from_pretrained(tmp_path / "tok")(SAMPLE)["input_ids"] == with_cls
    only_vocab = tmp_path / "vocab_only"
    only_vocab.mkdir()
    (only_vocab / "vocab.txt").write_text((tmp_path / "tok" / "vocab.txt").read_text())
    assert BertTokenizer.from_pretrained(only_vocab)(SAMPLE)["input_ids"] == with_cls
    lines = (tmp_path / "tok" / "vocab.txt").read_text().splitlines()
    assert lines == tokenizer.vocab() and len(lines) == tokenizer.vocab_size


def test_bad_arguments(tokenizer):
    with pytest.raises(AttnlabError, match="vocab_size"):
        WordPieceTokenizer.train(TEXTS, vocab_size=5)
    with pytest.raises(AttnlabError, match="at least one"):
        WordPieceTokenizer.train([], vocab_size=50)
    with pytest.raises(AttnlabError, match="out of range"):
        tokenizer.decode([tokenizer.vocab_size])


def test_from_vocab_file_matches_huggingface(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    hf = BertTokenizer.from_pretrained(tmp_path)
    loaded = WordPieceTokenizer.from_vocab_file(tmp_path / "vocab.txt")
    text = "The [MASK] queue RAISES a ValueError, unless items are sorted!"
    assert [loaded.cls_id, *loaded.encode(text), loaded.sep_id] == hf(text)["input_ids"]
    assert loaded.mask_id in loaded.encode(text)
    with pytest.raises(AttnlabError, match="vocab file not found"):
        WordPieceTokenizer.from_vocab_file(tmp_path / "missing.txt")
