"""Evaluation metrics: BLEU, chrF, alignment error rate, bits per character, perplexity, accuracy.

BLEU (Papineni et al., 2002) and chrF (Popovic, 2015) are corpus-level scores from
``sacrebleu`` (Post, 2018) with its default settings, returned as floats in [0, 100].

Alignment error rate (Och & Ney, 2003), for predicted links A, sure gold links S and
possible gold links P (S is a subset of P)::

    AER = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|)

over a corpus the counts are summed over sentences before dividing. A link is a pair
``(source word index, target word index)``.

Word alignments from attention: with ``weights`` of shape ``(Lt, Ls)`` over tokens
(subwords), target word ``j`` (tokens T_j) and source word ``i`` (tokens S_i)::

    W[j, i] = (1 / |T_j|) * sum_{t in T_j} sum_{s in S_i} weights[t, s]

(attention mass into a source word, averaged over the target word's tokens), and each
target word links to ``argmax_i W[j, i]``.

Bits per character and perplexity from a summed negative log-likelihood in nats::

    bpc = total_nll / (num_chars * ln 2)        perplexity = exp(total_nll / num_tokens)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sacrebleu
import torch

from attnlab.errors import AttnlabError

Link = tuple[int, int]


def _reference_streams(hyps: Sequence[str], refs: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    """``refs[i]`` (one string or several) of ``hyps[i]`` -> sacrebleu's streams of references."""
    if len(hyps) != len(refs):
        raise AttnlabError(f"refs: expected one entry per hypothesis ({len(hyps)}), got {len(refs)}")
    if not hyps:
        raise AttnlabError("hyps: expected at least one hypothesis, got none")
    per_hyp = [[r] if isinstance(r, str) else list(r) for r in refs]
    counts = {len(r) for r in per_hyp}
    if len(counts) != 1 or 0 in counts:
        raise AttnlabError(f"refs: every hypothesis needs the same number (>= 1) of references, got {sorted(counts)}")
    return [list(stream) for stream in zip(*per_hyp)]


def bleu(hyps: Sequence[str], refs: Sequence[str] | Sequence[Sequence[str]], tokenize: str = "13a") -> float:
    """Corpus BLEU in [0, 100]; ``refs[i]`` is the reference (or list of references) of ``hyps[i]``."""
    return float(sacrebleu.corpus_bleu(list(hyps), _reference_streams(hyps, refs), tokenize=tokenize).score)


def chrf(hyps: Sequence[str], refs: Sequence[str] | Sequence[Sequence[str]], word_order: int = 0) -> float:
    """Corpus chrF in [0, 100] (``word_order=2`` gives chrF++)."""
    return float(sacrebleu.corpus_chrf(list(hyps), _reference_streams(hyps, refs), word_order=word_order).score)


def alignment_error_rate(
    predicted: set[Link] | Sequence[set[Link]],
    sure: set[Link] | Sequence[set[Link]],
    possible: set[Link] | Sequence[set[Link]] | None = None,
) -> float:
    """AER in [0, 1] of one sentence (sets of links) or a corpus (lists of sets).

    ``possible`` defaults to ``sure``; sure links always count as possible.
    """
    if isinstance(predicted, (set, frozenset)):
        predicted, sure = [predicted], [sure]
        possible = None if possible is None else [possible]
    possible = sure if possible is None else possible
    if not len(predicted) == len(sure) == len(possible):
        raise AttnlabError(
            f"alignment_error_rate: {len(predicted)} predicted, {len(sure)} sure and "
            f"{len(possible)} possible alignments; expected one of each per sentence"
        )
    hits_sure = hits_possible = size_a = size_s = 0
    for a, s, p in zip(predicted, sure, possible):
        a, s = set(a), set(s)
        hits_sure += len(a & s)
        hits_possible += len(a & (set(p) | s))
        size_a += len(a)
        size_s += len(s)
    if size_a + size_s == 0:
        return 0.0
    return 1.0 - (hits_sure + hits_possible) / (size_a + size_s)


def _word_membership(word_ids: Sequence[int | None], name: str) -> torch.Tensor:
    """``(num_words, num_tokens)`` 0/1 matrix: token t belongs to word w (None: to no word)."""
    words = [w for w in word_ids if w is not None]
    if any(w < 0 for w in words):
        raise AttnlabError(f"{name}: word indices must be >= 0 or None, got {sorted(set(words))[:3]}")
    membership = torch.zeros(max(words, default=-1) + 1, len(word_ids), dtype=torch.float64)
    for t, w in enumerate(word_ids):
        if w is not None:
            membership[w, t] = 1.0
    return membership


def alignments_from_attention(
    weights: torch.Tensor, src_word_ids: Sequence[int | None], tgt_word_ids: Sequence[int | None]
) -> set[Link]:
    """Word links ``(source word, target word)`` from token attention ``weights (Lt, Ls)``.

    ``*_word_ids[t]`` is the word of token ``t`` (``Tokenizer.word_ids``), or ``None`` for
    special tokens (BOS/EOS/padding), which are left out. Each target word links to the
    source word with the largest attention mass (see the module docstring).
    """
    weights = torch.as_tensor(weights)
    if weights.shape != (len(tgt_word_ids), len(src_word_ids)):
        raise AttnlabError(
            f"weights: expected shape (len(tgt_word_ids), len(src_word_ids)) = "
            f"({len(tgt_word_ids)}, {len(src_word_ids)}), got {tuple(weights.shape)}"
        )
    src_words = _word_membership(src_word_ids, "src_word_ids")  # (Ws, Ls)
    tgt_words = _word_membership(tgt_word_ids, "tgt_word_ids")  # (Wt, Lt)
    if src_words.shape[0] == 0:
        return set()
    tgt_words = tgt_words / tgt_words.sum(1, keepdim=True).clamp(min=1.0)  # mean over a word's tokens
    word_weights = tgt_words @ weights.detach().to("cpu", torch.float64) @ src_words.T  # (Wt, Ws)
    present = tgt_words.sum(1) > 0  # target word indices that have tokens
    best = word_weights.argmax(1)
    return {(int(best[j]), j) for j in range(len(best)) if present[j]}


def _check_count(name: str, value: float) -> None:
    if not value > 0:
        raise AttnlabError(f"{name}: expected > 0, got {value}")


def bits_per_character(total_nll_nats: float, num_chars: int) -> float:
    """Summed negative log-likelihood (nats) per character, in bits."""
    _check_count("num_chars", num_chars)
    return float(total_nll_nats) / (num_chars * math.log(2))


def perplexity(total_nll_nats: float, num_tokens: int) -> float:
    """``exp`` of the mean negative log-likelihood per token."""
    _check_count("num_tokens", num_tokens)
    return math.exp(float(total_nll_nats) / num_tokens)


def accuracy(predictions: torch.Tensor, targets: torch.Tensor, ignore_index: int | None = None) -> float:
    """Fraction in [0, 1] of positions where ``predictions == targets`` (``ignore_index`` left out)."""
    predictions, targets = torch.as_tensor(predictions), torch.as_tensor(targets)
    if predictions.shape != targets.shape:
        raise AttnlabError(
            f"predictions: expected the shape of targets {tuple(targets.shape)}, got {tuple(predictions.shape)}"
        )
    keep = torch.ones_like(targets, dtype=torch.bool) if ignore_index is None else targets != ignore_index
    total = int(keep.sum())
    _check_count("targets (positions not ignored)", total)
    return int(((predictions == targets) & keep).sum()) / total
