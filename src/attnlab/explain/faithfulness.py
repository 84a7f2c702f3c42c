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

Cost: every point is one forward of a perturbed copy. :func:`faithfulness_many` measures
several methods on one prediction at once: each perturbed input is fixed by the set of
units it replaces, so the copies of all methods are deduplicated by that set (the full
input and the all-baseline input are shared by every curve) and scored together, without
gradients, ``chunk`` copies a forward. Same numbers as :func:`faithfulness` per method.
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


def replaced(order: Tensor, ks: list[int], keep: bool) -> Tensor:
    """``(len(ks), L)`` bool: True where the unit is replaced (the top ``k`` of ``order``,
    or everything but them with ``keep``)."""
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)  # rank[j]: position of unit j in the order
    top = rank[None] < torch.tensor(ks, device=order.device)[:, None]  # (K, L) True: among the first k
    return ~top if keep else top


def perturbed(x: Explainable, order: Tensor, ks: list[int], keep: bool) -> Tensor:
    """``(len(ks), L, D)``: the top ``k`` of ``order`` replaced (``keep=False``) or kept alone."""
    return apply(x, replaced(order, ks, keep))


def apply(x: Explainable, masks: Tensor) -> Tensor:
    """``(S, L, D)``: the input with the units of each mask ``(S, L)`` replaced by the baseline."""
    return torch.where(masks[..., None], x.baseline[None], x.inputs[None])


def ranking(attribution: Tensor) -> Tensor:
    """The units, most important first (ties: the earlier unit first)."""
    return torch.argsort(attribution.detach().cpu().double(), descending=True, stable=True)


def faithfulness(x: Explainable, attribution: Tensor) -> dict[str, object]:
    """Every measure above for one prediction and one method's ``attribution (L,)``."""
    return faithfulness_many(x, {"": attribution})[""]


def faithfulness_many(x: Explainable, attributions: dict[str, Tensor], chunk: int | None = None) -> dict[str, dict]:
    """:func:`faithfulness` of each method's ``attribution (L,)`` on one prediction, the
    perturbed copies of all methods deduplicated and scored together (``chunk`` a pass:
    the :class:`Explainable`'s default when None)."""
    n = x.num_units
    ks = curve_ks(n)
    bins = [min(n, max(1, math.ceil(b * n))) for b in ERASER_BINS]
    points = sorted(set(ks) | set(bins))  # the ERASER bins mostly fall on the curve's points
    at = {k: i for i, k in enumerate(points)}
    masks = []
    for attribution in attributions.values():
        order = ranking(attribution).to(x.inputs.device)
        masks += [replaced(order, points, keep=False), replaced(order, points, keep=True)]
    unique, index = torch.unique(torch.cat(masks), dim=0, return_inverse=True)  # (U, L), (2 P methods,)
    scored = x.score(apply(x, unique)) if chunk is None else x.score(apply(x, unique), chunk)
    probs = scored.double().exp().cpu()[index.cpu()].view(len(attributions), 2, len(points))
    fractions = torch.tensor(ks, dtype=torch.float64) / n
    out = {}
    for name, (removed, kept) in zip(attributions, probs):
        deletion, del_bins = removed[[at[k] for k in ks]], removed[[at[k] for k in bins]]
        insertion, ins_bins = kept[[at[k] for k in ks]], kept[[at[k] for k in bins]]
        full = float(deletion[0])
        out[name] = {
            "aopc": float((full - deletion).mean()),
            "deletion_auc": float(torch.trapezoid(deletion, fractions)),
            "insertion_auc": float(torch.trapezoid(insertion, fractions)),
            "comprehensiveness": float((full - del_bins).mean()),
            "sufficiency": float((full - ins_bins).mean()),
            "fractions": fractions.tolist(),
            "deletion": deletion.tolist(),
            "insertion": insertion.tolist(),
        }
    return out
