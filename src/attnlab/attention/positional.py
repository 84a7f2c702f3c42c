"""Positional information for attention, which by itself is permutation-invariant.

- Sinusoidal (Vaswani et al. 2017):  PE[pos, 2i]   = sin(pos / 10000^(2i/d))
                                     PE[pos, 2i+1] = cos(pos / 10000^(2i/d))
- Learned absolute positions (GPT, BERT, ViT): an embedding table indexed by position.
- Rotary, RoPE (Su et al. 2021): rotate each pair (x_2i, x_2i+1) of q and k by the angle
  pos * theta_i, theta_i = base^(-2i/Dh), so q_m . k_n depends only on m - n.
- ALiBi (Press et al. 2022): add -slope_h * (i - j) to the scores of head h; slopes are a
  geometric sequence 2^(-8/H), 2^(-16/H), ...
- Learned relative positions (Shaw et al. 2018; Huang et al. 2020, method 4; BERT's
  ``relative_key`` / ``relative_key_query``): a vector r_d per distance d = i - j meets the
  query (and the key) in the scores: B_ij = (q_i . r_{i-j} [+ k_j . r_{i-j}]) / sqrt(Dh).

Rotary is a part of :class:`~attnlab.attention.multi_head.MultiHeadAttention`
(``rotary``); ALiBi and relative positions are score biases (``score_bias``).

Notation: L positions, D model width, Dh head width, H heads.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError


def sinusoidal_positions(num_positions: int, dim: int, base: float = 10000.0) -> Tensor:
    """The paper's fixed encoding, shape ``(num_positions, dim)`` (dim must be even)."""
    if dim % 2:
        raise AttnlabError(f"sinusoidal positions need an even dim, got {dim}")
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (L, 1)
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,)
    angles = position * inv_freq  # (L, D/2)
    pe = torch.empty(num_positions, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe.to(torch.get_default_dtype())


class LearnedPositions(nn.Module):
    """Learned absolute positions: ``positions (B, L) or (L,) -> (B, L, D)``."""

    def __init__(self, max_positions: int, dim: int):
        super().__init__()
        self.max_positions = max_positions
        self.embedding = nn.Embedding(max_positions, dim)

    def forward(self, positions: Tensor) -> Tensor:
        if positions.numel() and not torch.compiler.is_compiling():  # a value read would split a compiled graph
            self.check(int(positions.max()))
        return self.embedding(positions)

    def check(self, position: int) -> None:
        """A clear error for a position past the table."""
        if position >= self.max_positions:
            raise AttnlabError(f"sequence position {position} exceeds the model's limit of {self.max_positions} positions")


class RotaryEmbedding(nn.Module):
    """Rotary position embedding applied to per-head queries/keys ``(B, H, L, Dh)``."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise AttnlabError(f"rotary embedding needs an even head_dim, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate ``x (B, H, L, Dh)`` by ``positions`` ``(L,)`` or ``(B, L)``."""
        angles = positions.to(self.inv_freq.dtype)[..., None] * self.inv_freq  # (..., L, Dh/2)
        if angles.dim() == 3:  # (B, L, Dh/2) -> (B, 1, L, Dh/2), shared by heads
            angles = angles[:, None]
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x_even, x_odd = x[..., 0::2], x[..., 1::2]  # (B, H, L, Dh/2) each
        rotated = torch.stack((x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1)
        return rotated.flatten(-2)  # interleave back to (B, H, L, Dh)


class RelativePositionBias(nn.Module):
    """Learned relative-position scores, a score bias of multi-head attention:
    ``(q (B, H, Lq, Dh), k (B, H, Lk, Dh)) -> B (B, H, Lq, Lk)`` with

        B_ij = (q_i . r_{i-j} [+ k_j . r_{i-j}]) / sqrt(Dh)      (``key_query`` adds the k term)

    ``distance`` holds r_d for d = -(P-1) .. P-1, P = ``max_positions``; query i sits at
    position Lk - Lq + i (bottom-right, as with a cache of earlier keys)."""

    def __init__(self, max_positions: int, head_dim: int, *, key_query: bool = False):
        super().__init__()
        self.max_positions, self.key_query = max_positions, key_query
        self.distance = nn.Embedding(2 * max_positions - 1, head_dim)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        lq, lk = q.shape[2], k.shape[2]
        query_pos = torch.arange(lk - lq, lk, device=q.device)[:, None]  # (Lq, 1)
        key_pos = torch.arange(lk, device=q.device)[None, :]  # (1, Lk)
        table = self.distance(query_pos - key_pos + self.max_positions - 1).to(q.dtype)  # (Lq, Lk, Dh)
        bias = torch.einsum("bhld,lrd->bhlr", q, table)  # q_i . r_{i-j}
        if self.key_query:
            bias = bias + torch.einsum("bhrd,lrd->bhlr", k, table)  # + k_j . r_{i-j}
        return bias * q.shape[-1] ** -0.5


def alibi_slopes(num_heads: int) -> Tensor:
    """Per-head slopes ``(H,)``: 2^(-8/n), 2^(-16/n), ... with n the next power of two."""
    closest = 2 ** math.floor(math.log2(num_heads))
    slopes = [2 ** (-8 * (i + 1) / closest) for i in range(closest)]
    if closest < num_heads:  # the paper's interpolation for head counts that are not powers of 2
        extra = [2 ** (-4 * (2 * i + 1) / closest) for i in range(num_heads - closest)]
        slopes += extra
    return torch.tensor(slopes)


def alibi_bias(num_heads: int, num_queries: int, num_keys: int | None = None, device=None) -> Tensor:
    """Float mask ``(H, Lq, Lk)`` = -slope_h * distance, bottom-right aligned like causal masks."""
    num_keys = num_queries if num_keys is None else num_keys
    query_pos = torch.arange(num_keys - num_queries, num_keys, device=device)[:, None]
    key_pos = torch.arange(num_keys, device=device)[None, :]
    distance = (query_pos - key_pos).abs().float()  # (Lq, Lk)
    return -alibi_slopes(num_heads).to(device)[:, None, None] * distance
