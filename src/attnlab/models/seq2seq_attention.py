"""The attention interface of the RNN decoder: any mechanism plugs in, stateful or not.

A decoder step asks its attention for a context vector given the decoder state (query).
Some mechanisms need more than the query and the memory: where they attended before
(location-sensitive, monotonic), how much each word was covered (coverage), or the step
number (local-m). :class:`DecoderAttention` is the one interface the decoder sees::

    state            = attention.init_state(memory (B, S, Dk), mask (B, S))
    out, state       = attention(query (B, Dq), state)     out.output (B, Dk), out.weights (B, S)
    state            = state.reorder(index)                beam search
    loss             = attention.auxiliary_loss(...)       coverage / REINFORCE terms, or None

It wraps a mechanism module (passed in, never chosen by a string inside the model) and
carries the :class:`AttentionState`. :func:`build_attention` makes the named variants of
``attnlab train seq2seq --attention NAME``.

Notation: B batch (N rows in beam search), S source length, T target steps,
Dq query width (decoder hidden), Dk memory width.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import Tensor, nn

from attnlab.attention.additive import AdditiveAttention
from attnlab.attention.core import AttentionOutput
from attnlab.attention.coverage import CoverageAttention, coverage_loss
from attnlab.attention.hard import HardAttention
from attnlab.attention.local import LocalAttention
from attnlab.attention.location import LocationSensitiveAttention
from attnlab.attention.luong import LuongAttention
from attnlab.attention.memory_attention import MemoryAttention
from attnlab.attention.monotonic import MonotonicAttention, initial_alignment
from attnlab.errors import AttnlabError

ATTENTION_NAMES = (
    "bahdanau", "luong-dot", "luong-general", "luong-concat", "local-m", "local-p",
    "location", "monotonic", "hard", "coverage", "none",
)


@dataclass
class AttentionState:
    """What the attention carries between decoder steps (one row per hypothesis)."""

    memory: Tensor  # (N, S, Dk) encoder states: keys and values
    projected_keys: Tensor | None  # (N, S, P) key side of the score, computed once
    mask: Tensor  # (N, S) True on real source positions
    previous: Tensor  # (N, S) weights of the last step (monotonic: one-hot at 0 at first)
    cumulative: Tensor  # (N, S) sum of the weights so far (coverage: divided by fertility)
    fertility: Tensor | None  # (N, S) coverage fertility Phi
    step: int = 0

    def reorder(self, index: Tensor) -> AttentionState:
        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.index_select(0, index)

        return replace(
            self, memory=pick(self.memory), projected_keys=pick(self.projected_keys), mask=pick(self.mask),
            previous=pick(self.previous), cumulative=pick(self.cumulative), fertility=pick(self.fertility),
        )


class FixedContext(nn.Module):
    """No attention: every step gets the same summary of the source, the mean of the
    encoder states (the fixed-length bottleneck of Cho et al. 2014 / Sutskever et al. 2014).
    """

    def forward(self, memory: Tensor, mask: Tensor) -> Tensor:
        weights = mask.to(memory.dtype) / mask.sum(dim=1, keepdim=True).clamp_min(1)  # (N, S)
        return (weights[:, None, :] @ memory)[:, 0]  # (N, Dk)


class DecoderAttention(nn.Module):
    """One step of ``mechanism`` inside an RNN decoder; see the module docstring.

    ``coverage_weight`` scales the coverage loss of :class:`CoverageAttention`.
    """

    def __init__(self, mechanism: nn.Module, *, coverage_weight: float = 0.0):
        super().__init__()
        self.mechanism = mechanism
        self.coverage_weight = coverage_weight

    def init_state(self, memory: Tensor, mask: Tensor) -> AttentionState:
        m = self.mechanism
        batch, length = mask.shape
        zeros = memory.new_zeros(batch, length)
        previous = initial_alignment(batch, length, dtype=memory.dtype, device=memory.device) \
            if isinstance(m, MonotonicAttention) else zeros
        projected = m.precompute_keys(memory) if hasattr(m, "precompute_keys") else None
        fertility = m.fertility(memory) if isinstance(m, CoverageAttention) else None
        return AttentionState(memory, projected, mask, previous, zeros, fertility)

    def forward(self, query: Tensor, state: AttentionState) -> tuple[AttentionOutput, AttentionState]:
        """``query (N, Dq)`` -> context ``(N, Dk)``, weights ``(N, S)`` (None for ``none``)."""
        m, memory = self.mechanism, state.memory
        common = {"mask": state.mask, "projected_keys": state.projected_keys}
        if isinstance(m, FixedContext):
            return AttentionOutput(m(memory, state.mask)), replace(state, step=state.step + 1)
        if isinstance(m, MemoryAttention):
            out = m(query, memory, memory, need_weights=True, **common)
        elif isinstance(m, LocationSensitiveAttention):
            out = m(query, memory, memory, previous=state.previous, cumulative=state.cumulative, **common)
        elif isinstance(m, CoverageAttention):
            out = m(query, memory, memory, coverage=state.cumulative, **common)
        elif isinstance(m, MonotonicAttention):
            out = m(query, memory, memory, previous=state.previous, **common)
        elif isinstance(m, LocalAttention):
            out = m(query, memory, memory, step=state.step, **common)
        elif isinstance(m, HardAttention):
            out = m(query, memory, memory, **common)
        else:
            raise AttnlabError(f"attention: no decoder interface for {type(m).__name__}")
        weights = out.weights.to(memory.dtype)
        increment = weights / state.fertility if state.fertility is not None else weights
        new_state = replace(state, previous=weights, cumulative=state.cumulative + increment, step=state.step + 1)
        return out, new_state

    def auxiliary_loss(
        self, alignments: Tensor | None, log_prob: Tensor | None, token_nll: Tensor, target_mask: Tensor
    ) -> Tensor | None:
        """Extra training loss of the mechanism, or None.

        ``alignments (B, T, S)``, ``log_prob (B, T)`` of sampled hard attention,
        ``token_nll (B, T)`` the per-token negative log-likelihood, ``target_mask (B, T)``.
        """
        m = self.mechanism
        if isinstance(m, CoverageAttention) and self.coverage_weight:
            return self.coverage_weight * coverage_loss(alignments, target_mask)
        if isinstance(m, HardAttention) and log_prob is not None:
            # per target token, so the score-function gradient stays on the scale of the
            # cross-entropy's (the clipped gradient norm is shared): R = mean_t log p(y_t | j, x)
            lengths = target_mask.sum(dim=1).clamp_min(1)
            reward = -(token_nll * target_mask).sum(dim=1) / lengths  # (B,)
            return m.reinforce_loss((log_prob * target_mask).sum(dim=1) / lengths, reward)
        return None


def build_attention(name: str, query_dim: int, key_dim: int, attention_dim: int = 128, *, window: int = 5) -> nn.Module:
    """The mechanism called ``name`` (one of :data:`ATTENTION_NAMES`) for a decoder."""
    if name == "bahdanau":
        return AdditiveAttention(query_dim, key_dim, attention_dim)
    if name.startswith("luong-") and name[6:] in ("dot", "general", "concat"):
        return LuongAttention(query_dim, key_dim, score=name[6:], hidden_dim=attention_dim)
    if name in ("local-m", "local-p"):
        mode = "monotonic" if name == "local-m" else "predictive"
        return LocalAttention(query_dim, key_dim, mode=mode, window=window, hidden_dim=attention_dim)
    if name == "location":
        return LocationSensitiveAttention(query_dim, key_dim, attention_dim)
    if name == "monotonic":
        return MonotonicAttention(query_dim, key_dim, attention_dim)
    if name == "hard":
        return HardAttention(AdditiveAttention(query_dim, key_dim, attention_dim))
    if name == "coverage":
        return CoverageAttention(query_dim, key_dim, attention_dim)
    if name == "none":
        return FixedContext()
    raise AttnlabError(f"attention must be one of {ATTENTION_NAMES}, got {name!r}")

