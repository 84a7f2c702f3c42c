"""Greedy and beam search against brute-force enumeration on a Markov toy decoder,
and against the Transformer's uncached forward pass.

A toy decoder with a fixed table ``log p(next | last)`` makes the best sequence
computable by enumerating every sequence (V=4, at most 4 tokens): beam search with a
beam as wide as the search space must find it exactly (fp32 scores, atol 1e-5).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from attnlab.config import preset
from attnlab.errors import AttnlabError
from attnlab.evaluation.decoding import beam_search, decode, greedy_search, length_penalty
from attnlab.models.transformer import TRANSFORMER_PRESETS, Transformer

BOS, EOS, V, MAX_LEN = 0, 1, 4, 4


class MarkovDecoder:
    """``log p(v | last token)`` from a random table per sentence; state = (rows' sentence ids)."""

    def __init__(self, table: torch.Tensor):
        self.table = table  # (B, V, V) log-probabilities

    def start(self, src_ids):
        return [torch.arange(src_ids.shape[0]), None]

    def step(self, tokens, state):
        return self.table[state[0], tokens], state

    def reorder(self, state, index):
        return [state[0][index], None]


def markov(batch: int, seed: int) -> MarkovDecoder:
    g = torch.Generator().manual_seed(seed)
    return MarkovDecoder(torch.log_softmax(2 * torch.randn(batch, V, V, generator=g), dim=-1))


def brute_force(table: torch.Tensor, alpha: float) -> tuple[list[int], float]:
    """The best ended-or-truncated sequence by length-normalized log-probability."""
    best, best_score = None, -float("inf")
    for n in range(1, MAX_LEN + 1):
        for seq in itertools.product(range(V), repeat=n):
            if EOS in seq[:-1] or (n < MAX_LEN and seq[-1] != EOS):
                continue
            logp = sum(float(table[a, b]) for a, b in zip((BOS, *seq), seq))
            score = logp / float(length_penalty(torch.tensor(n), alpha))
            if score > best_score:
                best, best_score = list(seq), logp
    return [t for t in best if t != EOS], best_score


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_finds_the_brute_force_optimum(alpha):
    model = markov(3, seed=0)
    src = torch.zeros(3, 2, dtype=torch.long)
    out = beam_search(model, src, bos_id=BOS, eos_id=EOS, max_len=MAX_LEN, beam_size=V**MAX_LEN, alpha=alpha)
    for b in range(3):
        tokens, score = brute_force(model.table[b], alpha)
        assert out.tokens[b] == tokens
        assert abs(float(out.scores[b]) - score) < 1e-5


def test_beam_of_one_is_greedy_and_greedy_follows_the_argmax():
    model = markov(5, seed=1)
    src = torch.zeros(5, 2, dtype=torch.long)
    greedy = greedy_search(model, src, bos_id=BOS, eos_id=EOS, max_len=MAX_LEN)
    beam = beam_search(model, src, bos_id=BOS, eos_id=EOS, max_len=MAX_LEN, beam_size=1, alpha=0.0)
    assert greedy.tokens == beam.tokens
    torch.testing.assert_close(greedy.scores, beam.scores, atol=1e-5, rtol=0)
    for b in range(5):
        last, expected = BOS, []
        for _ in range(MAX_LEN):
            last = int(model.table[b, last].argmax())
            if last == EOS:
                break
            expected.append(last)
        assert greedy.tokens[b] == expected


def test_beam_search_never_scores_worse_than_greedy():
    model = markov(8, seed=2)
    src = torch.zeros(8, 2, dtype=torch.long)
    greedy = greedy_search(model, src, bos_id=BOS, eos_id=EOS, max_len=MAX_LEN)
    beam = beam_search(model, src, bos_id=BOS, eos_id=EOS, max_len=MAX_LEN, beam_size=3, alpha=0.0)
    assert bool((beam.scores >= greedy.scores - 1e-6).all())


def tiny_transformer() -> Transformer:
    torch.manual_seed(0)
    return Transformer(preset(TRANSFORMER_PRESETS, "tiny", src_vocab_size=20, tgt_vocab_size=20, num_decoder_layers=2)).eval()


def uncached_greedy(model: Transformer, src: torch.Tensor, max_len: int) -> list[int]:
    """Re-run the full forward pass on the whole prefix at every step."""
    prefix = [model.config.bos_id]
    for _ in range(max_len):
        nxt = int(model(src, torch.tensor([prefix])).logits[0, -1].argmax())
        if nxt == model.config.eos_id:
            break
        prefix.append(nxt)
    return prefix[1:]


def test_transformer_cached_greedy_equals_uncached_and_batching_does_not_change_outputs():
    model = tiny_transformer()
    src = torch.randint(4, 20, (3, 6))
    src[1, 3:] = 0
    c = model.config
    batched = greedy_search(model, src, bos_id=c.bos_id, eos_id=c.eos_id, max_len=12)
    for b in range(3):
        alone = src[b : b + 1, : 3 if b == 1 else 6]
        assert batched.tokens[b] == uncached_greedy(model, alone, 12)
        assert greedy_search(model, alone, bos_id=c.bos_id, eos_id=c.eos_id, max_len=12).tokens[0] == batched.tokens[b]


def test_transformer_beam_is_batch_independent():
    model = tiny_transformer()
    src = torch.randint(4, 20, (3, 5))
    c = model.config
    kwargs = dict(bos_id=c.bos_id, eos_id=c.eos_id, max_len=10, beam_size=3, alpha=0.6)
    together = decode(model, src, **kwargs)
    for b in range(3):
        alone = decode(model, src[b : b + 1], **kwargs)
        assert alone.tokens[0] == together.tokens[b]
        torch.testing.assert_close(alone.scores[0], together.scores[b], atol=1e-5, rtol=0)


def test_bad_arguments():
    model = markov(1, seed=0)
    with pytest.raises(AttnlabError, match="beam_size"):
        beam_search(model, torch.zeros(1, 2, dtype=torch.long), bos_id=0, eos_id=1, max_len=3, beam_size=0)
    with pytest.raises(AttnlabError, match="max_len"):
        greedy_search(model, torch.zeros(1, 2, dtype=torch.long), bos_id=0, eos_id=1, max_len=0)


class Uncached:
    """The Transformer as a step decoder without caches: every step re-runs the full
    forward pass on each row's whole prefix (rows reordered by index, as beam search does)."""

    def __init__(self, model: Transformer):
        self.model = model

    def start(self, src_ids):
        return src_ids, torch.empty(src_ids.shape[0], 0, dtype=torch.long)

    def step(self, tokens, state):
        src, prefix = state
        prefix = torch.cat([prefix, tokens[:, None]], dim=1)  # (N, t)
        logits = self.model(src, prefix).logits[:, -1]  # (N, V)
        return torch.log_softmax(logits.float(), dim=-1), (src, prefix)

    def reorder(self, state, index):
        return state[0].index_select(0, index), state[1].index_select(0, index)


@pytest.mark.parametrize("beam_size, alpha", [(2, 0.0), (4, 0.6)])
def test_transformer_cached_beam_search_equals_uncached(beam_size, alpha):
    """The KV caches (reordered between steps) change nothing: same hypotheses and scores
    as re-running the whole prefix every step, for a padded batch."""
    model = tiny_transformer()
    with torch.no_grad():  # sharper distributions: fewer near-ties between beams
        model.output_proj.weight.mul_(3.0)
    src = torch.randint(4, 20, (3, 6))
    src[2, 4:] = 0
    c = model.config
    kwargs = dict(bos_id=c.bos_id, eos_id=c.eos_id, max_len=9, beam_size=beam_size, alpha=alpha)
    cached = beam_search(model, src, **kwargs)
    uncached = beam_search(Uncached(model), src, **kwargs)
    assert cached.tokens == uncached.tokens
    torch.testing.assert_close(cached.scores, uncached.scores, atol=1e-5, rtol=0)


# Placeholder constraint: tokens 2 ("%s") and 3 ("%d") are placeholders of two groups, 4 is a word.
PH_V, PH_GROUP = 5, torch.tensor([-1, -1, 0, 1, -1])


def allowed(seq: tuple[int, ...], need: list[int]) -> bool:
    """The constraint's rule, token by token: no placeholder beyond ``need``, no </s> while
    one is owed, only placeholders when what is owed fills the steps left but one."""
    used = [0, 0]
    for t, token in enumerate(seq):
        owed = sum(n - u for n, u in zip(need, used))
        group = int(PH_GROUP[token])
        if group >= 0 and used[group] >= need[group]:
            return False
        if group < 0 and owed > 0 and (token == EOS or owed >= MAX_LEN - t - 1):
            return False
        if group >= 0:
            used[group] += 1
    return True


def constrained_brute_force(table: torch.Tensor, need: list[int], alpha: float) -> list[int]:
    """The best sequence among those the constraint allows (every one keeps ``need`` exactly)."""
    best, best_score = None, -float("inf")
    for n in range(1, MAX_LEN + 1):
        for seq in itertools.product(range(PH_V), repeat=n):
            finished = seq[-1] == EOS
            if EOS in seq[:-1] or (n < MAX_LEN and not finished) or BOS in seq:
                continue
            body = [t for t in seq if t != EOS]
            if not allowed(seq, need):
                continue
            assert [body.count(2), body.count(3)] == need
            logp = sum(float(table[a, b]) for a, b in zip((BOS, *seq), seq))
            score = logp / float(length_penalty(torch.tensor(n), alpha))
            if score > best_score:
                best, best_score = body, score
    return best


@pytest.mark.parametrize("seed", range(6))
def test_constrained_wide_beam_finds_the_best_sequence_that_keeps_the_placeholders(seed):
    from attnlab.evaluation.decoding_constraints import PlaceholderConstraint

    g = torch.Generator().manual_seed(seed)
    table = torch.log_softmax(2 * torch.randn(3, PH_V, PH_V, generator=g), dim=-1)
    table[:, :, BOS] = -1e9  # never emit <s>
    needs = [[1, 0], [0, 2], [1, 1]]
    constraint = PlaceholderConstraint(PH_GROUP, torch.tensor(needs), EOS, MAX_LEN)
    hyps = beam_search(MarkovDecoder(table), torch.zeros(3, 1, dtype=torch.long), bos_id=BOS, eos_id=EOS,
                       max_len=MAX_LEN, beam_size=PH_V**MAX_LEN, alpha=0.6, constraint=constraint)
    for b in range(3):
        assert hyps.tokens[b] == constrained_brute_force(table[b], needs[b], 0.6)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_model_that_prefers_the_wrong_placeholder_is_corrected(beam_size):
    """log p strongly favours "%d" then </s>; the source holds "%s": the output holds "%s", no "%d"."""
    from attnlab.evaluation.decoding_constraints import PlaceholderConstraint

    table = torch.full((1, PH_V, PH_V), -8.0)
    table[0, BOS, 3] = -0.01  # <s> -> %d (wrong)
    table[0, BOS, 4] = -5.0
    table[0, 3, EOS] = table[0, 2, EOS] = table[0, 4, 2] = -0.01
    table[0, BOS, 2] = -6.0  # the right placeholder, unlikely to the model
    src = torch.zeros(1, 1, dtype=torch.long)
    free = decode(MarkovDecoder(table), src, bos_id=BOS, eos_id=EOS, max_len=MAX_LEN, beam_size=beam_size)
    assert free.tokens == [[3]]  # unconstrained: silently wrong
    constraint = PlaceholderConstraint(PH_GROUP, torch.tensor([[1, 0]]), EOS, MAX_LEN)
    fixed = decode(MarkovDecoder(table), src, bos_id=BOS, eos_id=EOS, max_len=MAX_LEN, beam_size=beam_size,
                   constraint=constraint)
    assert fixed.tokens[0].count(2) == 1 and 3 not in fixed.tokens[0]
