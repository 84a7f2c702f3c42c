"""Gradient saliency (Simonyan, Vedaldi & Zisserman 2014; per token: Li et al. 2016).

    a_j = || d f / d e_j ||_2          f = log p(target), e_j the unit's input row (D,)

How much an infinitesimal change of the unit moves the prediction, whatever its sign.
"""

from __future__ import annotations

from torch import Tensor

from attnlab.explain.explainable import Explainable


def saliency(x: Explainable) -> Tensor:
    """``(L,)``: the L2 norm of the gradient of log p(target) at each unit."""
    grad = x.input_gradient()[None]
    return grad[0].norm(dim=-1)
