"""TranslationBatches against a plain-Python reference built from the tokenizers."""

import pytest
import torch

from attnlab.data import WordTokenizer, synthetic_corpus
from attnlab.data.batching import TranslationBatches
from attnlab.errors import AttnlabError


@pytest.fixture(scope="module")
def data():
    corpus = synthetic_corpus("tiny", num_train=600, num_valid=1, num_test=1).train
    src_tok = WordTokenizer.train(corpus.src)
    tgt_tok = WordTokenizer.train(corpus.tgt)
    return corpus, src_tok, tgt_tok


def reference_rows(corpus, src_tok, tgt_tok, index):
    s, t = src_tok.encode(corpus.src[index]), tgt_tok.encode(corpus.tgt[index])
    return s, [tgt_tok.bos_id] + t, t + [tgt_tok.eos_id]


def test_batches_match_reference_encoding(data):
    corpus, src_tok, tgt_tok = data
    batches = TranslationBatches(corpus, src_tok, tgt_tok, batch_size=16, seed=1)
    for step in (0, 5, batches.steps_per_epoch + 2):
        batch = batches.batch(step)
        rows = batches.rows(step)
        assert batch["tgt_in"].shape == batch["tgt_out"].shape
        assert all(v.dtype == torch.long for v in batch.values())
        for r, index in enumerate(rows):
            for key, ids, pad in zip(("src_ids", "tgt_in", "tgt_out"),
                                     reference_rows(corpus, src_tok, tgt_tok, index),
                                     (src_tok.pad_id, tgt_tok.pad_id, tgt_tok.pad_id)):
                row = batch[key][r].tolist()
                assert row == ids + [pad] * (len(row) - len(ids))


def test_deterministic_in_seed_and_step_regardless_of_call_order(data):
    a = TranslationBatches(*data, batch_size=16, seed=3)
    b = TranslationBatches(*data, batch_size=16, seed=3)
    late = b.batch(70)
    assert all(torch.equal(a.batch(s)["src_ids"], b.batch(s)["src_ids"]) for s in (0, 1, 2))
    assert torch.equal(a.batch(70)["tgt_out"], late["tgt_out"])
    c = TranslationBatches(*data, batch_size=16, seed=4)
    assert a.rows(0) != c.rows(0)


@pytest.mark.parametrize("sizing", [{"batch_size": 16}, {"max_tokens": 200}, {"batch_size": 8, "max_tokens": 150}])
def test_every_pair_once_per_epoch_within_limits(data, sizing):
    batches = TranslationBatches(*data, **sizing)
    for epoch in range(2):
        first = sum(len(batches._plan(e)) for e in range(epoch))
        seen = []
        for step in range(first, first + len(batches._plan(epoch))):
            assert batches.locate(step)[0] == epoch
            batch, rows = batches.batch(step), batches.rows(step)
            seen += rows
            if "batch_size" in sizing:
                assert len(rows) <= sizing["batch_size"]
            if "max_tokens" in sizing and len(rows) > 1:
                width = max(batch["src_ids"].shape[1], batch["tgt_in"].shape[1])
                assert len(rows) * width <= sizing["max_tokens"]
        assert sorted(seen) == list(range(len(data[0])))


def test_length_grouping_reduces_padding(data):
    def pad_fraction(pool_batches):
        b = TranslationBatches(*data, batch_size=16, pool_batches=pool_batches)
        pads = total = 0
        for step in range(b.steps_per_epoch):
            src = b.batch(step)["src_ids"]
            pads += int((src == data[1].pad_id).sum())
            total += src.numel()
        return pads / total

    assert pad_fraction(50) < 0.5 * pad_fraction(1)


def test_max_len_drops_long_pairs_and_in_order_covers_the_rest(data):
    corpus, src_tok, tgt_tok = data
    batches = TranslationBatches(corpus, src_tok, tgt_tok, batch_size=32, max_len=9)
    fits = [n for n in range(len(corpus))
            if max(len(src_tok.encode(corpus.src[n])), len(tgt_tok.encode(corpus.tgt[n])) + 1) <= 9]
    assert batches.num_dropped == len(corpus) - len(fits) > 0
    seen = []
    for rows, batch in batches.in_order():
        assert batch["src_ids"].shape[0] == len(rows)
        assert batch["src_ids"][0].tolist()[: len(src_tok.encode(corpus.src[rows[0]]))] == src_tok.encode(corpus.src[rows[0]])
        seen += rows
    assert sorted(seen) == fits
    assert batches.count_tokens(batches.batch(0)) == sum(len(tgt_tok.encode(corpus.tgt[i])) + 1 for i in batches.rows(0))


def test_bad_arguments(data):
    with pytest.raises(AttnlabError, match="batch_size, max_tokens"):
        TranslationBatches(*data, batch_size=None)
    with pytest.raises(AttnlabError, match="batch_size must be >= 1"):
        TranslationBatches(*data, batch_size=0)
    with pytest.raises(AttnlabError, match="no pair fits"):
        TranslationBatches(*data, batch_size=8, max_len=1)
    with pytest.raises(AttnlabError, match="step must be >= 0"):
        TranslationBatches(*data, batch_size=8).batch(-1)


def test_alignment_targets_only_when_asked_rows_follow_tgt_out(data):
    corpus, src_tok, tgt_tok = data
    assert "align" not in TranslationBatches(corpus, src_tok, tgt_tok, batch_size=16, seed=1).batch(0)
    batches = TranslationBatches(corpus, src_tok, tgt_tok, batch_size=16, seed=1, alignments=True)
    again = TranslationBatches(corpus, src_tok, tgt_tok, batch_size=16, seed=1, alignments=True)
    for step in (0, 3):
        batch, rows = batches.batch(step), batches.rows(step)
        align = batch["align"]  # (B, Lt, Ls)
        assert align.shape == (len(rows), batch["tgt_out"].shape[1], batch["src_ids"].shape[1])
        torch.testing.assert_close(align, again.batch(step)["align"], rtol=0, atol=0)
        for r, index in enumerate(rows):
            length = len(tgt_tok.encode(corpus.tgt[index]))
            assert align[r, length:].abs().sum() == 0  # EOS and padding rows
            for i, j in corpus.alignments[index]:  # word tokenizer: token = word
                assert align[r, j, i] > 0
            linked = {j for _, j in corpus.alignments[index]}
            sums = align[r, :length].sum(-1)
            torch.testing.assert_close(sums, torch.tensor([float(j in linked) for j in range(length)]))


def test_alignment_targets_need_a_corpus_with_alignments(data):
    corpus, src_tok, tgt_tok = data
    bare = type(corpus)(corpus.src, corpus.tgt)
    with pytest.raises(AttnlabError, match="no gold word alignments"):
        TranslationBatches(bare, src_tok, tgt_tok, batch_size=8, alignments=True)
