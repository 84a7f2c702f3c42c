"""Attention × gradient: the last layer's attention weighted by its gradient, positive part,
heads averaged (Chefer, Gur & Wolf 2021's per-layer term; Grad-SAM, Barkan et al. 2021;
Hao et al. 2021's attention attribution without the integral).

    a_j = (1/H) sum_h max(0, A_h[q, u_j] · d f / d A_h[q, u_j])      f = log p(target)

The gradient is taken through the model's own attention tensors (the ones its forward
multiplies the values by), so it measures how much the prediction uses each weight.
"""

from __future__ import annotations

from torch import Tensor

from attnlab.explain.explainable import Explainable


def attention_gradient(x: Explainable) -> Tensor:
    """``(L,)``: E_h[(A ⊙ ∇A)^+] of the last layer, query row, at the units."""
    last, grad = x.last_map_gradient()  # (H, M, M) each
    weighted = (last * grad).clamp_min(0).mean(dim=0)  # (M, M)
    return weighted[x.query, x.units]
