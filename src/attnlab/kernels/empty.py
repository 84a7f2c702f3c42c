"""Attention over an empty batch, no queries or no keys, for every path.

When B, H or Lq is 0 there is nothing to compute; when Lk is 0 every query has no key to
attend to, so (as for any fully masked row) its weights are empty and its output zero.
The fused kernels do not all accept these sizes (the CPU flash kernel divides by them),
so every path hands them here. The products below have a zero-length dimension, so they
cost nothing, and they keep the autograd graph: gradients are zeros of the right shapes.

Shapes: q ``(..., Lq, D)``, k ``(..., Lk, D)``, v ``(..., Lk, Dv)``; output ``(..., Lq, Dv)``,
weights ``(..., Lq, Lk)``.
"""

from __future__ import annotations

from torch import Tensor


def is_empty(query: Tensor, key: Tensor) -> bool:
    """True when there is no query or no key to attend to (B, H, Lq or Lk is 0)."""
    return 0 in query.shape[:-1] or 0 in key.shape[:-1]


def empty_attention(query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """``(output, weights)`` for inputs :func:`is_empty` accepts: zeros and empty weights."""
    weights = query @ key.transpose(-2, -1)  # (..., Lq, Lk): a zero-size tensor
    return weights @ value, weights  # (..., Lq, Dv): empty or, for Lk = 0, zeros
