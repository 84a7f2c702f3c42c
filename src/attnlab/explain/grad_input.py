"""Gradient × input (Shrikumar et al. 2016; Kindermans et al. 2016), against the baseline.

    a_j = sum_d (e_jd - b_jd) d f / d e_jd          f = log p(target)

The first-order Taylor term of removing unit j (replacing e_j by its baseline b_j, the
model's pad / [MASK] embedding or the mean); signed: positive evidence ranks first.
"""

from __future__ import annotations

from torch import Tensor

from attnlab.explain.explainable import Explainable


def grad_input(x: Explainable) -> Tensor:
    """``(L,)``: gradient · (input − baseline) at each unit."""
    grad = x.input_gradient()[None]
    return (grad[0] * (x.inputs - x.baseline)).sum(dim=-1)
