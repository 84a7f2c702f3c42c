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

K = L when L <= :data:`FULL_CURVE`, else the curve has ``points`` evenly spaced k (default
:data:`POINTS` = 11: k = 0, L/10, ..., L; 21 halves the step) plus the ERASER bins off that grid.
The coarser default halves the copies of a long input (at 512 units, 7 methods: 184 instead
of 310) and moves AOPC and the AUCs by a Riemann sum's difference (docs/explain.md).

Cost: every point is one forward of a perturbed copy. :func:`faithfulness_many` measures
several methods on one prediction at once: each perturbed input is fixed by the set of
units it replaces, so the copies of all methods are deduplicated by that set (the full
input and the all-baseline input are shared by every curve) and scored together, without
gradients, ``chunk`` copies a forward. Same numbers as :func:`faithfulness` per method.
:func:`faithfulness_groups` does it for many inputs in one call, so inputs of different lengths
whose forward can be padded (a translator's sentences) share batches (:mod:`attnlab.explain.padded`).
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor

from attnlab.explain.explainable import CHUNK, Explainable
from attnlab.explain.padded import TOKENS, apply, score_masks

FULL_CURVE = 64
POINTS = 11
ERASER_BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
PRECISIONS = ("fp32", "bf16")
PRECISION = "fp32"


def curve_ks(num_units: int, points: int = POINTS) -> list[int]:
    """The k (units removed / inserted) at which a curve is measured, 0 and L included."""
    if points < 2:
        raise ValueError(f"curve points: expected >= 2, got {points}")
    if num_units <= FULL_CURVE:
        return list(range(num_units + 1))
    return sorted({round(num_units * n / (points - 1)) for n in range(points)})


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


def ranking(attribution: Tensor) -> Tensor:
    """The units, most important first (ties: the earlier unit first)."""
    return torch.argsort(attribution.detach().cpu().double(), descending=True, stable=True)


def faithfulness(x: Explainable, attribution: Tensor, points: int = POINTS) -> dict[str, object]:
    """Every measure above for one prediction and one method's ``attribution (L,)``."""
    return faithfulness_many(x, {"": attribution}, points=points)[""]


def faithfulness_many(x: Explainable, attributions: dict[str, Tensor], chunk: int | None = None,
                      points: int = POINTS, precision: str = PRECISION) -> dict[str, dict]:
    """:func:`faithfulness` of each method's ``attribution (L,)`` on one prediction, the
    perturbed copies of all methods deduplicated and scored together (``chunk`` a pass:
    the :class:`Explainable`'s default when None); curves at ``points`` k beyond
    :data:`FULL_CURVE` units, the copies' forwards in ``precision`` (:func:`precision_context`)."""
    return faithfulness_shared([x], [attributions], chunk, points, precision)[0]


def precision_context(precision: str, device: torch.device) -> AbstractContextManager:
    """The curves' forwards: ``"fp32"`` as the model is, ``"bf16"`` under bf16 autocast
    (matrix products in bf16, the log-probabilities read in fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"curve precision: expected one of {PRECISIONS}, got {precision!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def faithfulness_shared(xs: list[Explainable], attributions: list[dict[str, Tensor]], chunk: int | None = None,
                        points: int = POINTS, precision: str = PRECISION) -> list[dict[str, dict]]:
    """:func:`faithfulness_many` of several predictions on the same units that one forward
    scores (``xs`` share one :class:`Shared`; or one prediction): every copy of every
    prediction and method deduplicated by the units it replaces, each scored once for all
    the predictions, each prediction reading its own column."""
    return faithfulness_groups([xs], [attributions], chunk, points, precision)[0]


def faithfulness_groups(groups: list[list[Explainable]], attributions: list[list[dict[str, Tensor]]],
                        chunk: int | None = None, points: int = POINTS, precision: str = PRECISION,
                        tokens: int = TOKENS) -> list[list[dict[str, dict]]]:
    """:func:`faithfulness_shared` of each group, every group's deduplicated copies scored in
    one call: groups whose forward can be padded and joined (a translator's sentences,
    :mod:`attnlab.explain.padded`) share batches of ``tokens`` positions; the others are
    scored group by group, ``chunk`` copies a forward. The same numbers as group by group."""
    plans = [_plan(xs, methods, points) for xs, methods in zip(groups, attributions)]
    with precision_context(precision, groups[0][0].inputs.device) if groups else nullcontext():
        scores = score_masks([(xs[0], unique, widths) for xs, (unique, _, _, widths) in zip(groups, plans)],
                             chunk or CHUNK, tokens)  # (U, T) each
    out = []
    for xs, methods, (_, index, grid, _), probs in zip(groups, attributions, plans, scores):
        n, ks = xs[0].num_units, curve_ks(xs[0].num_units, points)
        bins = [min(n, max(1, math.ceil(b * n))) for b in ERASER_BINS]
        probs, start, measured = probs.exp(), 0, []
        for one, named in zip(xs, methods):
            column = one.column if one.shared is not None else 0
            p = probs[index[start:start + len(named)], column].view(len(named), 2, len(grid))
            measured.append(_measures(list(named), p, grid, ks, bins, n))
            start += len(named)
        out.append(measured)
    return out


def _plan(xs: list[Explainable], attributions: list[dict[str, Tensor]],
          points: int) -> tuple[Tensor, Tensor, list[int], Tensor]:
    """The copies of one group: ``unique (U, L)`` the distinct replaced-unit masks, ``index``
    ``(methods, 2 len(grid))`` each method's deletion then insertion copies among them, the
    grid of k (the curve's points and the ERASER bins), and ``widths (U,)``: 1 + the last
    column (prediction) that reads each copy."""
    x, n = xs[0], xs[0].num_units
    if len(xs) > 1 and (x.shared is None or any(o.shared is not x.shared for o in xs)):
        raise ValueError("faithfulness_shared: predictions must share one Shared forward")
    bins = [min(n, max(1, math.ceil(b * n))) for b in ERASER_BINS]
    grid = sorted(set(curve_ks(n, points)) | set(bins))  # the ERASER bins, some on the curve's points
    masks, readers = [], []
    for one, methods in zip(xs, attributions):
        for attribution in methods.values():
            order = ranking(attribution).to(x.inputs.device)
            masks += [replaced(order, grid, keep=False), replaced(order, grid, keep=True)]
            readers.append(torch.full((2 * len(grid),), one.column if one.shared is not None else 0))
    if not masks:
        return torch.zeros(0, n, dtype=torch.bool), torch.zeros(0, 2 * len(grid), dtype=torch.long), grid, \
            torch.zeros(0, dtype=torch.long)
    unique, index = torch.unique(torch.cat(masks), dim=0, return_inverse=True)  # (U, L), (2 P methods,)
    index = index.cpu()
    widths = torch.zeros(len(unique), dtype=torch.long).scatter_reduce(0, index, torch.cat(readers) + 1, "amax")
    return unique, index.view(-1, 2 * len(grid)), grid, widths


def _measures(names: list[str], probs: Tensor, grid: list[int], ks: list[int], bins: list[int], n: int) -> dict:
    """Every measure of each method from its ``probs (methods, 2, grid)``: deletion, insertion."""
    at = {k: i for i, k in enumerate(grid)}
    fractions = torch.tensor(ks, dtype=torch.float64) / n
    out = {}
    for name, (removed, kept) in zip(names, probs):
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
