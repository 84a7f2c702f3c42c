"""Tokenizers: round trips, special ids, word positions and save/load, against plain-Python references."""

import json

import pytest

from attnlab.data import BPETokenizer, SpecialTokens, Tokenizer, WordTokenizer
from attnlab.errors import AttnlabError

TEXTS = [
    "the small cat sees the dog .",
    "a dog sees two cats , and the cat runs .",
    "the cats run to the house .",
    "three dogs see a small house .",
] * 3


def test_word_tokenizer_vocabulary_matches_counted_words():
    tok = WordTokenizer.train(TEXTS, min_freq=1)
    words = {w for t in TEXTS for w in t.split()}
    assert tok.vocab_size == len(words) + 4
    assert [tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id] == [0, 1, 2, 3]
    assert tok.mask_id is None and tok.cls_id is None and tok.sep_id is None
    for text in TEXTS:
        assert tok.decode(tok.encode(text)) == text
        assert tok.tokens(text) == text.split()


def test_word_tokenizer_min_freq_max_size_and_unknowns():
    counts: dict[str, int] = {}
    for t in TEXTS[:4]:
        for w in t.split():
            counts[w] = counts.get(w, 0) + 1
    tok = WordTokenizer.train(TEXTS[:4], min_freq=2)
    kept = {w for w, c in counts.items() if c >= 2}
    assert set(tok.backend.get_vocab()) - set(SpecialTokens().strings()) == kept
    assert tok.encode("zebra the") == [tok.unk_id, tok.token_to_id("the")]
    assert WordTokenizer.train(TEXTS, max_size=10).vocab_size == 10


def test_word_tokenizer_splits_punctuation():
    tok = WordTokenizer.train(["hello, world."])
    assert tok.tokens("hello, world.") == ["hello", ",", "world", "."]


def test_bpe_round_trip_and_word_ids():
    tok = BPETokenizer.train(TEXTS, vocab_size=60)
    for text in TEXTS:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        word_ids = tok.word_ids(text)
        assert len(word_ids) == len(ids)
        assert word_ids == sorted(word_ids)
        # concatenating the pieces of each whitespace word gives the word back
        pieces: dict[int, str] = {}
        for piece, w in zip(tok.tokens(text), word_ids):
            pieces[w] = pieces.get(w, "") + piece.replace(BPETokenizer.WORD_END, "")
        assert [pieces[i] for i in range(len(text.split()))] == text.split()
    assert tok.vocab_size <= 60


def test_bpe_word_ids_with_attached_punctuation_and_extra_spaces():
    tok = BPETokenizer.train(TEXTS, vocab_size=40)
    text = "  cats,   dogs."
    assert sorted(set(tok.word_ids(text))) == [0, 1]
    assert tok.word_ids(text)[-1] == 1


def test_training_is_deterministic():
    a = BPETokenizer.train(TEXTS, vocab_size=50)
    b = BPETokenizer.train(TEXTS, vocab_size=50)
    assert a.backend.get_vocab() == b.backend.get_vocab()
    assert a.encode(TEXTS[1]) == b.encode(TEXTS[1])


@pytest.mark.parametrize("cls,kwargs", [(WordTokenizer, {}), (BPETokenizer, {"vocab_size": 50})])
def test_save_load_round_trip(tmp_path, cls, kwargs):
    specials = SpecialTokens(mask="<mask>", cls="<cls>", sep="<sep>")
    tok = cls.train(TEXTS, special_tokens=specials, **kwargs)
    tok.save(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["kind"] == cls.kind
    back = Tokenizer.load(tmp_path)
    assert type(back) is cls
    assert back.special_tokens == specials
    assert (back.mask_id, back.cls_id, back.sep_id) == (tok.mask_id, tok.cls_id, tok.sep_id)
    assert back.encode(TEXTS[1]) == tok.encode(TEXTS[1])
    framed = [back.cls_id, back.bos_id, *back.encode(TEXTS[1]), back.eos_id, back.pad_id]
    assert back.decode(framed) == TEXTS[1]
    assert back.decode(framed, skip_special=False).startswith("<cls>")
    assert not list(tmp_path.glob("*.tmp"))


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(AttnlabError, match="tokenizer_config.json: file not found"):
        Tokenizer.load(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"kind": "nope"}')
    with pytest.raises(AttnlabError, match="unknown tokenizer kind 'nope'"):
        Tokenizer.load(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"kind": "word", "special_tokens": {}}')
    (tmp_path / "tokenizer.json").write_text("{broken")
    with pytest.raises(AttnlabError, match="not a readable tokenizer file"):
        Tokenizer.load(tmp_path)


def test_bad_arguments():
    with pytest.raises(AttnlabError, match="texts"):
        WordTokenizer.train([])
    with pytest.raises(AttnlabError, match="max_size"):
        WordTokenizer.train(TEXTS, max_size=3)
    with pytest.raises(AttnlabError, match="max_size"):
        WordTokenizer.train(TEXTS, max_size=0)
    with pytest.raises(AttnlabError, match="vocab_size"):
        BPETokenizer.train(TEXTS, vocab_size=2)
    tok = WordTokenizer.train(TEXTS)
    with pytest.raises(AttnlabError, match="out of range"):
        tok.decode([tok.vocab_size])
