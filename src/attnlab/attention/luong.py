"""Multiplicative ("global") attention (Luong, Pham & Manning 2015, "Effective Approaches to
Attention-based Neural Machine Translation").

    dot      e_ij = h_i^T hbar_j
    general  e_ij = h_i^T W_a hbar_j
    concat   e_ij = v_a^T tanh(W_a [h_i; hbar_j])
    a_ij = softmax_j(e_ij),   c_i = sum_j a_ij hbar_j

with h_i the decoder state (query) and hbar_j the encoder states (keys). ``scale=True``
is TensorFlow Addons' ``LuongAttention(scale=True)``: the score is multiplied by a learned
scalar g initialised to 1. The attentional state h~_i = tanh(W_c [c_i; h_i]) of the paper
belongs to the decoder (:mod:`attnlab.models.seq2seq`), not to this module.

The key side is computed once per source sentence by :meth:`precompute_keys`
(dot: the keys themselves; general: W_a hbar_j as in TFA's memory layer; concat: the key
columns of W_a applied to hbar_j); pass it back as ``projected_keys=`` at every step.

Notation: B batch, Lq queries, Lk keys, Dq query width, Dk key width, Dv value width,
H hidden width of the concat score (``hidden_dim``, default Dq).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.memory_attention import MemoryAttention
from attnlab.attention.scores import DEFAULT_MEMORY_BUDGET, additive_score, dot_score
from attnlab.errors import AttnlabError

SCORES = ("dot", "general", "concat")


class LuongAttention(MemoryAttention):
    """Luong attention of queries ``(B, Lq, Dq)`` (or one step ``(B, Dq)``) over keys ``(B, Lk, Dk)``.

    Args:
        query_dim: Dq.  key_dim: Dk (must equal Dq for ``"dot"``).
        score: ``"dot"`` | ``"general"`` | ``"concat"``.
        scale: multiply the score by a learned scalar g (initialised to 1), as TFA does.
        hidden_dim: H of the concat score (default Dq).
        memory_budget: bytes one ``(B, chunk, Lk, H)`` block of the concat score may take (default 4 MiB).

    Parameters: ``general``: ``key_proj.weight`` W_a ``(Dq, Dk)``; ``concat``:
    ``concat_proj.weight`` W_a ``(H, Dq + Dk)`` and ``v`` ``(H,)``; with ``scale``: ``g`` ``()``.
    ``forward`` is :meth:`MemoryAttention.forward`.
    """

    def __init__(
        self,
        query_dim: int,
        key_dim: int,
        *,
        score: str = "dot",
        scale: bool = False,
        hidden_dim: int | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ):
        super().__init__()
        if score not in SCORES:
            raise AttnlabError(f"score must be one of {SCORES}, got {score!r}")
        if score == "dot" and query_dim != key_dim:
            raise AttnlabError(f"score='dot' needs query_dim == key_dim, got {query_dim} and {key_dim}")
        hidden_dim = query_dim if hidden_dim is None else hidden_dim
        if min(query_dim, key_dim, hidden_dim) <= 0:
            raise AttnlabError(f"query_dim, key_dim, hidden_dim must be positive, got {query_dim}, {key_dim}, {hidden_dim}")
        self.query_dim, self.key_dim, self.hidden_dim = query_dim, key_dim, hidden_dim
        self.score_name, self.scale, self.memory_budget = score, scale, memory_budget
        if score == "general":
            self.key_proj = nn.Linear(key_dim, query_dim, bias=False)
        elif score == "concat":
            self.concat_proj = nn.Linear(query_dim + key_dim, hidden_dim, bias=False)
            limit = math.sqrt(3.0 / hidden_dim)
            self.v = nn.Parameter(torch.empty(hidden_dim).uniform_(-limit, limit))
        if scale:
            self.g = nn.Parameter(torch.tensor(1.0))

    def precompute_keys(self, keys: Tensor) -> Tensor:
        """dot: k; general: W_a k ``(B, Lk, Dq)``; concat: W_a[:, Dq:] k ``(B, Lk, H)``."""
        if self.score_name == "general":
            return self.key_proj(keys)
        if self.score_name == "concat":
            return F.linear(keys, self.concat_proj.weight[:, self.query_dim :])
        return keys

    def score(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        """e_ij (times g with ``scale``): ``(B, Lq, Dq), (B, Lk, P) -> (B, Lq, Lk)``."""
        if self.score_name == "concat":
            projected_query = F.linear(query, self.concat_proj.weight[:, : self.query_dim])  # (B, Lq, H)
            scores = additive_score(projected_query, projected_keys, self.v, memory_budget=self.memory_budget)
        else:
            scores = dot_score(query, projected_keys)
        return self.g * scores if self.scale else scores

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, score={self.score_name!r}, scale={self.scale}"
