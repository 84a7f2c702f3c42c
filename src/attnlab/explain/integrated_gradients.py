"""Integrated gradients (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks").

    a_j = sum_d (e_jd - b_jd) ∫_0^1 d f(b + α (e - b)) / d e_jd dα
        ≈ sum_d (e_jd - b_jd) (1/m) sum_{k=0}^{m-1} d f(b + α_k (e - b)) / d e_jd,   α_k = (k + 1/2) / m

Completeness: sum_j a_j = f(e) - f(b) (up to the midpoint rule's error). The m points of
the path run through the model in batches of ``batch`` copies. f = log p(target); b the
baseline of the :class:`Explainable`. Predictions sharing one forward (a translator's
target steps: same units, same path) are integrated together, every (prediction, point)
pair a copy, computed once for all of them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.explain.explainable import Explainable
from attnlab.explain.faithfulness import PRECISION, precision_context

STEPS = 32


def integrated_gradients(x: Explainable, steps: int = STEPS, batch: int = 32, precision: str = PRECISION) -> Tensor:
    """``(L,)``: the path integral of the gradient from the baseline to the input, per unit;
    the forward-backwards in ``precision`` ("bf16": under bf16 autocast, the gradients
    accumulated in fp32; docs/explain.md states how far that moves the attributions)."""
    if steps < 1:
        raise ValueError(f"steps: expected >= 1, got {steps}")
    delta = x.inputs - x.baseline  # (L, D)
    alphas = (torch.arange(steps, dtype=x.inputs.dtype, device=x.inputs.device) + 0.5) / steps  # (m,)
    with precision_context(precision, x.inputs.device):
        if x.shared is not None:
            return x.shared.memo(("integrated_gradients", steps, precision),
                                 lambda: _every_prediction(x, alphas, delta))[x.column]
        total = torch.zeros_like(delta)
        for part in alphas.split(batch):
            path = x.baseline[None] + part[:, None, None] * delta[None]  # (m', L, D)
            _, grad = x.gradient(path)
            total += grad.sum(dim=0)
    return (delta * total / steps).sum(dim=-1)


def _every_prediction(x: Explainable, alphas: Tensor, delta: Tensor) -> Tensor:
    """``(T, L)``: the attribution of each of the T predictions of ``x``'s shared forward."""
    t, m = x.shared.count, len(alphas)
    path = x.baseline[None] + alphas[:, None, None] * delta[None]  # (m, L, D)
    columns = torch.arange(t, device=delta.device).repeat_interleave(m)  # (T m,): prediction of each copy
    grads = x.shared.gradients(path.repeat(t, 1, 1), columns, x.module)  # (T m, L, D)
    return (delta * grads.view(t, m, *delta.shape).sum(1) / m).sum(-1)
