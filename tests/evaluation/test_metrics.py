"""Metrics against sacrebleu, hand-computed AER cases and the formulas in fp64."""

import math

import pytest
import sacrebleu
import torch

from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import (
    accuracy,
    alignment_error_rate,
    alignments_from_attention,
    bits_per_character,
    bleu,
    chrf,
    perplexity,
)

HYPS = ["the cat sat on the mat .", "a dog barks loudly", "it is raining today"]
REFS = ["the cat sat on a mat .", "the dog barks loudly", "it rains today"]
REFS2 = ["a cat was sitting on the mat .", "a dog is barking loudly", "today it is raining"]


def test_bleu_and_chrf_equal_sacrebleu():
    assert bleu(HYPS, REFS) == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS]).score, abs=1e-9)
    assert chrf(HYPS, REFS) == pytest.approx(sacrebleu.corpus_chrf(HYPS, [REFS]).score, abs=1e-9)
    both = list(zip(REFS, REFS2))
    assert bleu(HYPS, both) == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS, REFS2]).score, abs=1e-9)
    assert chrf(HYPS, both, word_order=2) == pytest.approx(
        sacrebleu.corpus_chrf(HYPS, [REFS, REFS2], word_order=2).score, abs=1e-9)
    assert 0 < bleu(HYPS, REFS) < 100


def test_perfect_and_empty_matches():
    assert bleu(REFS, REFS) == pytest.approx(100.0)
    assert chrf(REFS, REFS) == pytest.approx(100.0)
    assert bleu(["x y z w"], ["a b c d"]) == pytest.approx(0.0)


def test_bleu_input_errors():
    with pytest.raises(AttnlabError, match="one entry per hypothesis"):
        bleu(HYPS, REFS[:2])
    with pytest.raises(AttnlabError, match="at least one hypothesis"):
        bleu([], [])
    with pytest.raises(AttnlabError, match="same number"):
        bleu(HYPS[:2], [["a", "b"], ["c"]])


def test_aer_hand_computed():
    sure = {(0, 0), (1, 2)}
    possible = {(2, 1)}  # sure links are added to possible
    # A == S: perfect
    assert alignment_error_rate({(0, 0), (1, 2)}, sure, possible) == 0.0
    # A = {(0,0),(2,1),(3,3)}: |A∩S| = 1, |A∩P| = 2, |A| = 3, |S| = 2 -> 1 - 3/5
    assert alignment_error_rate({(0, 0), (2, 1), (3, 3)}, sure, possible) == pytest.approx(0.4)
    # nothing right: 1 - 0/(2+2)
    assert alignment_error_rate({(5, 5), (6, 6)}, sure) == pytest.approx(1.0)
    # empty prediction: 1 - 0/(0+2)
    assert alignment_error_rate(set(), sure) == pytest.approx(1.0)
    assert alignment_error_rate(set(), set()) == 0.0


def test_aer_corpus_sums_counts_before_dividing():
    predicted = [{(0, 0)}, {(0, 0), (1, 1), (2, 2)}]
    sure = [{(0, 0), (1, 1)}, {(0, 0)}]
    # hits_s = 1 + 1, hits_p = 1 + 1, |A| = 4, |S| = 3 -> 1 - 4/7
    assert alignment_error_rate(predicted, sure) == pytest.approx(1 - 4 / 7)
    with pytest.raises(AttnlabError, match="one of each per sentence"):
        alignment_error_rate(predicted, sure[:1])


def test_alignments_from_attention_word_level():
    # 3 target words over 4 target tokens (+ a trailing EOS); 3 source words over 5 tokens (+ EOS)
    src_word_ids = [0, 1, 1, 2, 2, None]
    tgt_word_ids = [0, 1, 2, 2, None]
    w = torch.tensor([
        [0.1, 0.2, 0.2, 0.5, 0.0, 0.0],  # word 0: mass 0.1 / 0.4 / 0.5 -> source 2
        [0.6, 0.3, 0.0, 0.1, 0.0, 0.0],  # word 1 -> source 0
        [0.0, 0.3, 0.3, 0.4, 0.0, 0.0],  # word 2 token a: 0 / 0.6 / 0.4
        [0.4, 0.0, 0.0, 0.2, 0.2, 0.2],  # word 2 token b: 0.4 / 0 / 0.4 -> mean 0.2 / 0.3 / 0.4 -> 2
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # EOS: ignored
    ])
    assert alignments_from_attention(w, src_word_ids, tgt_word_ids) == {(2, 0), (0, 1), (2, 2)}


def test_alignments_from_attention_against_a_loop_reference():
    torch.manual_seed(0)
    src_word_ids = [0, 0, 1, 2, 2, 2, 3, None]
    tgt_word_ids = [None, 0, 1, 1, 2, 3, 3]
    w = torch.softmax(torch.randn(len(tgt_word_ids), len(src_word_ids)), dim=-1)
    expected = set()
    for j in range(4):
        rows = [t for t, x in enumerate(tgt_word_ids) if x == j]
        mass = [sum(float(w[t, s]) for t in rows for s, y in enumerate(src_word_ids) if y == i) / len(rows)
                for i in range(4)]
        expected.add((max(range(4), key=mass.__getitem__), j))
    assert alignments_from_attention(w, src_word_ids, tgt_word_ids) == expected
    with pytest.raises(AttnlabError, match="expected shape"):
        alignments_from_attention(w.T, src_word_ids, tgt_word_ids)


def test_bits_per_character_and_perplexity_formulas():
    torch.manual_seed(0)
    logits = torch.randn(50, 7, dtype=torch.float64)
    targets = torch.randint(0, 7, (50,))
    nll = torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
    assert perplexity(nll, 50) == pytest.approx(
        torch.exp(torch.nn.functional.cross_entropy(logits, targets)).item(), rel=1e-12)
    assert bits_per_character(nll, 50) == pytest.approx(
        -torch.log2(torch.softmax(logits, -1)[torch.arange(50), targets]).mean().item(), rel=1e-12)
    assert bits_per_character(100 * math.log(2), 100) == pytest.approx(1.0)
    with pytest.raises(AttnlabError, match="num_chars"):
        bits_per_character(1.0, 0)
    with pytest.raises(AttnlabError, match="num_tokens"):
        perplexity(1.0, 0)


def test_accuracy():
    predictions = torch.tensor([[1, 2, 3], [4, 5, 0]])
    targets = torch.tensor([[1, 0, 3], [4, 0, 0]])
    assert accuracy(predictions, targets) == pytest.approx(4 / 6)
    assert accuracy(predictions, targets, ignore_index=0) == pytest.approx(3 / 3)
    with pytest.raises(AttnlabError, match="shape of targets"):
        accuracy(predictions[0], targets)
    with pytest.raises(AttnlabError, match="not ignored"):
        accuracy(torch.zeros(2), torch.zeros(2), ignore_index=0)
