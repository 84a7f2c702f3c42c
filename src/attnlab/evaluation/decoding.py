"""Batched greedy and beam-search decoding for any step-wise decoder.

A decoder only has to implement the small :class:`StepDecoder` protocol::

    state            = model.start(src_ids)            encode once, make the caches
    log_probs, state = model.step(tokens (N,), state)   feed one token per row -> (N, V)
    state            = model.reorder(state, index)      keep rows index (N_new,)

The Transformer (KV caches) and the RNN seq2seq translator (recurrent state) both do.

Greedy: ``y_t = argmax_v log p(v | y_<t, x)`` until ``</s>`` or ``max_len`` tokens.

Beam search keeps the K best partial hypotheses of each sentence by the sum of their
token log-probabilities; a finished hypothesis stays in the beam with its score frozen
(it may only be continued by padding at no cost). Among the K final hypotheses the
winner maximizes the GNMT length-normalized score (Wu et al. 2016)::

    score(y) = log P(y | x) / lp(y),    lp(y) = ((5 + |y|) / 6) ** alpha

(``alpha = 0``: plain log-probability; larger ``alpha`` favours longer outputs).

Both take an optional ``constraint``
(:class:`~attnlab.evaluation.decoding_constraints.PlaceholderConstraint`): it masks the
log-probabilities of each step before the choice and counts what was chosen.

Notation: B sentences, K beam size, N = B * K rows, V vocabulary, T tokens generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.evaluation.decoding_constraints import PlaceholderConstraint


class StepDecoder(Protocol):
    def start(self, src_ids: Tensor) -> Any: ...

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]: ...

    def reorder(self, state: Any, index: Tensor) -> Any: ...


@dataclass
class Hypotheses:
    """``tokens[b]``: the output ids of sentence ``b`` (no ``<s>``, no ``</s>``, no padding);
    ``scores (B,)`` their total log-probability (``</s>`` included)."""

    tokens: list[list[int]]
    scores: Tensor


def length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT's ``((5 + |y|) / 6) ** alpha``."""
    return ((5.0 + lengths.float()) / 6.0) ** alpha


def _check(max_len: int, beam_size: int = 1) -> None:
    if max_len < 1:
        raise AttnlabError(f"max_len: expected >= 1, got {max_len}")
    if beam_size < 1:
        raise AttnlabError(f"beam_size: expected >= 1, got {beam_size}")


def _strip(rows: Tensor, eos_id: int) -> list[list[int]]:
    """Cut each row ``(T,)`` at its first ``</s>``."""
    out = []
    for row in rows.tolist():
        out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out


@torch.no_grad()
def greedy_search(model: StepDecoder, src_ids: Tensor, *, bos_id: int, eos_id: int, max_len: int,
                  constraint: PlaceholderConstraint | None = None) -> Hypotheses:
    """The most probable next token at every step, for a batch ``src_ids (B, S)``."""
    _check(max_len)
    state = model.start(src_ids)
    b = src_ids.shape[0]
    tokens = torch.full((b,), bos_id, dtype=torch.long, device=src_ids.device)
    finished = torch.zeros(b, dtype=torch.bool, device=src_ids.device)
    scores = torch.zeros(b, device=src_ids.device)
    out = []
    for _ in range(max_len):
        log_probs, state = model.step(tokens, state)  # (B, V)
        if constraint is not None:
            log_probs = constraint.mask(log_probs)
        best, tokens = log_probs.max(dim=-1)  # (B,), (B,)
        tokens = tokens.masked_fill(finished, eos_id)
        if constraint is not None:
            constraint.advance(tokens)
        scores += best.masked_fill(finished, 0.0)
        out.append(tokens)
        finished |= tokens == eos_id
        if bool(finished.all()):
            break
    return Hypotheses(_strip(torch.stack(out, dim=1), eos_id), scores)


@torch.no_grad()
def beam_search(
    model: StepDecoder,
    src_ids: Tensor,
    *,
    bos_id: int,
    eos_id: int,
    max_len: int,
    beam_size: int = 4,
    alpha: float = 0.6,
    constraint: PlaceholderConstraint | None = None,
) -> Hypotheses:
    """The K-best search of the module docstring for a batch ``src_ids (B, S)``."""
    _check(max_len, beam_size)
    b, k, device = src_ids.shape[0], beam_size, src_ids.device
    state = model.start(src_ids)
    expand = torch.arange(b, device=device).repeat_interleave(k)  # rows b*K .. b*K+K-1
    state = model.reorder(state, expand)
    if constraint is not None:
        constraint.reorder(expand)
    scores = torch.full((b, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start equal: keep one so the first step gives K distinct ones
    history = torch.empty(b, k, 0, dtype=torch.long, device=device)
    finished = torch.zeros(b, k, dtype=torch.bool, device=device)
    lengths = torch.zeros(b, k, dtype=torch.long, device=device)
    tokens = torch.full((b * k,), bos_id, dtype=torch.long, device=device)
    for _ in range(max_len):
        log_probs, state = model.step(tokens, state)  # (N, V)
        if constraint is not None:
            log_probs = constraint.mask(log_probs)
        v = log_probs.shape[-1]
        log_probs = log_probs.view(b, k, v)
        frozen = torch.full_like(log_probs[0, 0], float("-inf"))
        frozen[eos_id] = 0.0  # a finished hypothesis continues with </s> at no cost
        log_probs = torch.where(finished[..., None], frozen, log_probs)
        candidates = (scores[..., None] + log_probs).view(b, k * v)  # (B, K*V)
        scores, flat = candidates.topk(k, dim=-1)  # (B, K)
        beam, tokens = flat // v, flat % v  # (B, K) which parent, which token
        rows = (beam + torch.arange(b, device=device)[:, None] * k).view(-1)  # (N,)
        state = model.reorder(state, rows)
        if constraint is not None:
            constraint.reorder(rows)
            constraint.advance(tokens.view(-1))
        history = torch.cat([history.gather(1, beam[..., None].expand_as(history)), tokens[..., None]], dim=-1)
        was_finished = finished.gather(1, beam)
        lengths = lengths.gather(1, beam) + (~was_finished).long()
        finished = was_finished | (tokens == eos_id)
        tokens = tokens.view(-1)
        if bool(finished.all()):
            break
    normalized = scores / length_penalty(lengths, alpha)  # (B, K)
    best = normalized.argmax(dim=-1)  # (B,)
    winners = history[torch.arange(b, device=device), best]  # (B, T)
    return Hypotheses(_strip(winners, eos_id), scores[torch.arange(b, device=device), best])


def decode(
    model: StepDecoder, src_ids: Tensor, *, bos_id: int, eos_id: int, max_len: int, beam_size: int = 1,
    alpha: float = 0.6, constraint: PlaceholderConstraint | None = None,
) -> Hypotheses:
    """Greedy when ``beam_size == 1``, else beam search."""
    if beam_size == 1:
        return greedy_search(model, src_ids, bos_id=bos_id, eos_id=eos_id, max_len=max_len, constraint=constraint)
    return beam_search(
        model, src_ids, bos_id=bos_id, eos_id=eos_id, max_len=max_len, beam_size=beam_size, alpha=alpha,
        constraint=constraint,
    )
