"""Is an attribution faithful? Remove (or keep) the inputs in its order and watch the prediction.

Let p(e) = exp f(e) be the probability of the explained prediction, r_1, r_2, ... the units
in the method's order (attribution descending), x\\k the input with r_1..r_k replaced by the
baseline (the :class:`Explainable`'s stated pad / [MASK] / mean value) and x|k the input
with every unit but r_1..r_k replaced.

    deletion curve    d_k = p(x\\k),  k = 0..K        (a faithful order drops it fast)
    insertion curve   i_k = p(x|k)                    (a faithful order restores it fast)
    AOPC              1/(K+1) sum_k (p(x) - d_k)       (Samek et al. 2017; higher is better)
    deletion AUC      ∫ d over the fraction removed    (trapezoids; lower is better)
    insertion AUC     ∫ i over the fraction inserted   (higher is better)
    comprehensiveness 1/|B| sum_b p(x) - p(x\\k_b)     ERASER (DeYoung et al. 2020), k_b = ceil(b L),
    sufficiency       1/|B| sum_b p(x) - p(x|k_b)      b in B = {1, 5, 10, 20, 50}%;
                                                       comprehensiveness higher, sufficiency lower is better

K = L when L <= :data:`FULL_CURVE`, else the curve has ``POINTS`` evenly spaced k.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from attnlab.explain.explainable import Explainable

FULL_CURVE = 64
POINTS = 21
ERASER_BINS = (0.01, 0.05, 0.10, 0.20, 0.50)


def curve_ks(num_units: int) -> list[int]:
    """The k (units removed / inserted) at which a curve is measured, 0 and L included."""
    if num_units <= FULL_CURVE:
        return list(range(num_units + 1))
    return sorted({round(num_units * n / (POINTS - 1)) for n in range(POINTS)})


def perturbed(x: Explainable, order: Tensor, ks: list[int], keep: bool) -> Tensor:
    """``(len(ks), L, D)``: the top ``k`` of ``order`` replaced (``keep=False``) or kept alone."""
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)  # rank[j]: position of unit j in the order
    top = rank[None] < torch.tensor(ks, device=order.device)[:, None]  # (K, L) True: among the first k
    chosen = top if not keep else ~top
    return torch.where(chosen[..., None], x.baseline[None], x.inputs[None])


def ranking(attribution: Tensor) -> Tensor:
    """The units, most important first (ties: the earlier unit first)."""
    return torch.argsort(attribution.detach().cpu().double(), descending=True, stable=True)


def faithfulness(x: Explainable, attribution: Tensor) -> dict[str, object]:
    """Every measure above for one prediction and one method's ``attribution (L,)``."""
    order = ranking(attribution).to(x.inputs.device)
    n = x.num_units
    ks = curve_ks(n)
    bins = [min(n, max(1, math.ceil(b * n))) for b in ERASER_BINS]
    points = sorted(set(ks) | set(bins))  # the ERASER bins mostly fall on the curve's points
    at = {k: n for n, k in enumerate(points)}
    probs = x.score(torch.cat([perturbed(x, order, points, keep=False),
                               perturbed(x, order, points, keep=True)])).double().exp().cpu()
    removed, kept = probs[: len(points)], probs[len(points):]
    deletion, del_bins = removed[[at[k] for k in ks]], removed[[at[k] for k in bins]]
    insertion, ins_bins = kept[[at[k] for k in ks]], kept[[at[k] for k in bins]]
    full = float(deletion[0])
    fractions = torch.tensor(ks, dtype=torch.float64) / n
    return {
        "aopc": float((full - deletion).mean()),
        "deletion_auc": float(torch.trapezoid(deletion, fractions)),
        "insertion_auc": float(torch.trapezoid(insertion, fractions)),
        "comprehensiveness": float((full - del_bins).mean()),
        "sufficiency": float((full - ins_bins).mean()),
        "fractions": fractions.tolist(),
        "deletion": deletion.tolist(),
        "insertion": insertion.tolist(),
    }
