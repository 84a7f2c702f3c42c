"""Additive attention (Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by Jointly
Learning to Align and Translate").

    e_ij = v^T tanh(W_q q_i + W_k k_j)                     (normalize=False, the paper)
    e_ij = (g v / ||v||)^T tanh(W_q q_i + W_k k_j + b)     (normalize=True)
    a_ij = softmax_j(e_ij),   c_i = sum_j a_ij v_j

The mechanisms that extend Bahdanau's score are built on this one: ``score(..., extra=x_ij)``
adds a key-side term inside the tanh, e_ij = v^T tanh(W_q q_i + W_k k_j + x_ij): the location
features of :class:`~attnlab.attention.location.LocationSensitiveAttention` (U f_ij) and the
coverage term of :class:`~attnlab.attention.coverage.CoverageAttention` (u C_ij, with
``key_bias``: W_k k_j + b_k); :class:`~attnlab.attention.monotonic.MonotonicAttention` and
:class:`~attnlab.attention.hard.HardAttention` take its scores as they are.

The normalized form is TensorFlow Addons' ``BahdanauAttention(normalize=True)``, a weight
normalization of v (Salimans & Kingma 2016): a learned scalar g initialised to
sqrt(1 / H) and a bias b (initialised to 0) inside the tanh. As in TFA, W_q and W_k have no
bias and v starts Glorot-uniform, U(-sqrt(3/H), sqrt(3/H)).

W_k k is computed once per source sentence (:meth:`precompute_keys`; pass it back as
``projected_keys=``). The score over all (i, j) pairs is memory-bounded:
:func:`attnlab.attention.scores.additive_score` processes blocks of queries within
``memory_budget`` bytes and recomputes them in backward.

Notation: B batch, Lq queries, Lk keys, Dq query width, Dk key width, Dv value width,
H hidden width (``hidden_dim``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from attnlab.attention.memory_attention import MemoryAttention
from attnlab.attention.scores import DEFAULT_MEMORY_BUDGET, additive_score
from attnlab.errors import AttnlabError


class AdditiveAttention(MemoryAttention):
    """Bahdanau attention of queries ``(B, Lq, Dq)`` (or one step ``(B, Dq)``) over keys ``(B, Lk, Dk)``.

    Args:
        query_dim: Dq.  key_dim: Dk.  hidden_dim: H, width of the tanh layer.
        normalize: TFA's weight-normalized form (scalar g, bias b); see the module docstring.
        key_bias: a bias on the key side, W_k k + b_k (``key_proj.bias``; coverage attention's).
        memory_budget: bytes one ``(B, chunk, Lk, H)`` block of the score may take (default 4 MiB).

    Parameters: ``query_proj.weight`` W_q ``(H, Dq)``, ``key_proj.weight`` W_k ``(H, Dk)``,
    ``v`` ``(H,)``, with ``normalize``: ``g`` ``()``, ``bias`` b ``(H,)``, with ``key_bias``:
    ``key_proj.bias`` ``(H,)``.
    ``forward`` is :meth:`MemoryAttention.forward`.
    """

    def __init__(
        self,
        query_dim: int,
        key_dim: int,
        hidden_dim: int,
        *,
        normalize: bool = False,
        key_bias: bool = False,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ):
        super().__init__()
        for name, value in (("query_dim", query_dim), ("key_dim", key_dim), ("hidden_dim", hidden_dim)):
            if value <= 0:
                raise AttnlabError(f"{name} must be positive, got {value}")
        self.query_dim, self.key_dim, self.hidden_dim = query_dim, key_dim, hidden_dim
        self.normalize, self.memory_budget = normalize, memory_budget
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, hidden_dim, bias=key_bias)
        limit = math.sqrt(3.0 / hidden_dim)
        self.v = nn.Parameter(torch.empty(hidden_dim).uniform_(-limit, limit))
        if normalize:
            self.g = nn.Parameter(torch.tensor(math.sqrt(1.0 / hidden_dim)))
            self.bias = nn.Parameter(torch.zeros(hidden_dim))

    def effective_v(self) -> Tensor:
        """v, or g v / ||v|| in the normalized form."""
        return self.g * self.v / self.v.norm() if self.normalize else self.v

    def precompute_keys(self, keys: Tensor) -> Tensor:
        """W_k k (+ b_k): ``(B, Lk, Dk) -> (B, Lk, H)``."""
        return self.key_proj(keys)

    def score(self, query: Tensor, projected_keys: Tensor, extra: Tensor | None = None) -> Tensor:
        """e_ij: ``(B, Lq, Dq), (B, Lk, H) -> (B, Lq, Lk)``; ``extra`` ``(B, Lk, H)``, a term
        added to the key side inside the tanh (see the module docstring)."""
        bias = self.bias if self.normalize else None
        keys = projected_keys if extra is None else projected_keys + extra  # (B, Lk, H)
        return additive_score(self.query_proj(query), keys, self.effective_v(), bias, memory_budget=self.memory_budget)

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, hidden_dim={self.hidden_dim}, normalize={self.normalize}"
