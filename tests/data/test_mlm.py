"""MLM/NSP batches: masking statistics (15%, 80/10/10), NSP balance, pairs, determinism."""

import pytest
import torch

from attnlab.data import WordPieceTokenizer
from attnlab.data.mlm import MLMBatches, documents_from_text, mask_tokens, source_lines
from attnlab.errors import AttnlabError

TEXT = """the first document starts here
it goes on with a second sentence
and ends with a third one

another document about queues
queues hold items in order
a lock guards the queue

a third document is short
it has two sentences
"""


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.train(TEXT.splitlines() * 3, vocab_size=120, min_freq=1)


def test_documents_from_text():
    docs = documents_from_text(TEXT)
    assert [len(d) for d in docs] == [3, 3, 2]
    assert docs[1][0] == "another document about queues"


def test_source_lines_separate_prose_and_code():
    source = '"""Module doc.\n\nMore words here."""\nimport os  \n\n# a comment\nx = 1\n'
    assert source_lines(source) == [
        ("Module doc.", True), ("More words here.", True), ("import os", False), ("a comment", True), ("x = 1", False)
    ]


def test_masking_statistics_on_a_large_sample(tokenizer):
    ids = torch.randint(5, tokenizer.vocab_size, (4000, 40))
    maskable = torch.rand(ids.shape) < 0.9
    masked, labels = mask_tokens(ids, maskable, tokenizer, torch.Generator().manual_seed(12345))
    chosen = labels != -100
    assert not (chosen & ~maskable).any()
    expected_counts = (maskable.sum(1).float() * 0.15).round().clamp(min=1)
    assert torch.equal(chosen.sum(1).float(), expected_counts)  # exactly 15% per row
    assert torch.equal(labels[chosen], ids[chosen])
    n = chosen.sum().item()
    as_mask = (masked[chosen] == tokenizer.mask_id).sum().item() / n
    unchanged = (masked[chosen] == ids[chosen]).sum().item() / n
    replaced = 1 - as_mask - unchanged
    # ~21,600 chosen tokens: 4 standard deviations of a proportion ~0.011 / 0.008.
    assert abs(as_mask - 0.8) < 0.011
    assert abs(unchanged - (0.1 + 0.1 / (tokenizer.vocab_size - 5))) < 0.008
    assert abs(replaced - 0.1) < 0.008
    assert torch.equal(masked[~chosen], ids[~chosen])
    assert (masked >= 5).logical_or(masked == tokenizer.mask_id).all()  # random tokens are never special


def test_batches_pairs_and_nsp_balance(tokenizer):
    docs = documents_from_text(TEXT)
    batches = MLMBatches(docs, tokenizer, batch_size=200, max_len=16, seed=3)
    batch = batches.batch(0)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "mlm_labels", "next_sentence_label"}
    assert abs(batch["next_sentence_label"].float().mean().item() - 0.5) < 0.1  # 200 draws: 2.8 sd
    ids, types, mask = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    assert ids.shape[1] <= 16 and (ids[:, 0] == tokenizer.cls_id).all()
    originals = torch.where(batch["mlm_labels"] != -100, batch["mlm_labels"], ids)
    sentences = {tuple(tokenizer.encode(s)): (d, j) for d, doc in enumerate(docs) for j, s in enumerate(doc)}
    for row in range(ids.shape[0]):
        n = int(mask[row].sum())
        seps = (originals[row, :n] == tokenizer.sep_id).nonzero().flatten().tolist()
        assert len(seps) == 2 and seps[1] == n - 1
        assert types[row, : seps[0] + 1].eq(0).all() and types[row, seps[0] + 1 : n].eq(1).all()
        a = tuple(originals[row, 1 : seps[0]].tolist())
        b = tuple(originals[row, seps[0] + 1 : seps[1]].tolist())
        if a in sentences and b in sentences:  # not truncated: check the pair
            (da, ja), (db, jb) = sentences[a], sentences[b]
            is_next = (da, ja + 1) == (db, jb)
            assert is_next == (batch["next_sentence_label"][row] == 0), (a, b)
    again = MLMBatches(docs, tokenizer, batch_size=200, max_len=16, seed=3).batch(0)
    assert all(torch.equal(batch[k], again[k]) for k in batch)


def test_bad_input(tokenizer):
    with pytest.raises(AttnlabError, match="at least 2 documents"):
        MLMBatches([["one", "two"]], tokenizer, 4)
    with pytest.raises(AttnlabError, match="max_len"):
        MLMBatches(documents_from_text(TEXT), tokenizer, 4, max_len=4)
