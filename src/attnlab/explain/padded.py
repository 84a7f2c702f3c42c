"""Perturbed copies of several inputs scored together: one padded batch for many sentences.

A translator explains every target step of a sentence on that sentence's source tokens
(one :class:`Shared` forward per sentence). Its faithfulness curves are a few hundred copies
of one short sentence -- too few, and too short, to keep the matrix products busy. The
copies of several sentences go through one forward by padding:

    source  (N, S_max)  each copy's source ids, ``pad_id`` after its own S_i tokens: masked
                        out of every attention, so no real position reads a padded one
    target  (N, T_max)  each copy's teacher-forced target, padded after its T_i tokens:
                        the decoder is causal, so step t < T_i never reads a padded one
    scores  (N, T_max)  row i: copy i's log p of its own sentence's steps; columns >= T_i
                        are read by nobody

so every score is the one the sentence's own forward gives, up to the rounding of a
different summation order (tested against each sentence's forward: fp32, 1e-5).

The adapter states how (:attr:`Shared.joint` ``(keys, e (N, S_max, D), owner (N,), width)
-> (N, width)``, copy i of the sentence whose :attr:`Shared.key` is ``keys[owner[i]]``, its
first ``width`` steps). A copy read only by steps t < w needs the first w target positions
alone (causal: later ones change nothing before them), so each copy carries the width its
readers need and the target is cut to the batch's widest: a step's own copies cost a
decoder of t + 1 positions, not T. Copies are ordered by (S, width) before they are cut
into batches of at most ``tokens`` padded positions ``N (S_max + width)``: little padding.

Notation: N copies in a batch, U_r the copies of request r, L_r its units, D width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.explain.explainable import CHUNK, Explainable, scored

TOKENS = 8192  # padded positions (source + target) a joint forward


def run_of(x: Explainable):
    """The forward that scores every prediction of ``x``'s group: its :class:`Shared`
    one (columns: the group's predictions) or its own (one column)."""
    return x.shared.run if x.shared is not None else x.run


def apply(x: Explainable, masks: Tensor) -> Tensor:
    """``(S, L, D)``: the input with the units of each mask ``(S, L)`` replaced by the baseline."""
    return torch.where(masks[..., None], x.baseline[None], x.inputs[None])


def score_masks(requests: list[tuple[Explainable, Tensor, Tensor | None]], chunk: int = CHUNK,
                tokens: int = TOKENS) -> list[Tensor]:
    """``(U_r, T_r)`` for each request ``(x, masks (U_r, L_r), widths (U_r,) or None)``: the
    scores of the predictions of ``x``'s group on each copy (``masks``' units replaced),
    without gradients; with ``widths``, copy u's first ``widths[u]`` columns only (the rest NaN).

    Requests whose :class:`Shared` states a ``joint`` forward are scored together in padded
    batches of at most ``tokens`` positions; any other, by its own forward, ``chunk`` copies
    a pass (every column)."""
    out: list[Tensor | None] = [None] * len(requests)
    pooled: dict[int, list[int]] = {}  # id(joint) -> request indices
    for r, (x, masks, _) in enumerate(requests):
        if x.shared is not None and x.shared.joint is not None and len(masks):
            pooled.setdefault(id(x.shared.joint), []).append(r)
        elif not len(masks):
            out[r] = torch.zeros(0, x.shared.count if x.shared is not None else 1, dtype=torch.float64)
        else:
            out[r] = scored(run_of(x), apply(x, masks), chunk).double().cpu().view(len(masks), -1)
    for indices in pooled.values():
        for r, scores in zip(indices, _joint([requests[r] for r in indices], tokens)):
            out[r] = scores
    return out


def _joint(requests: list[tuple[Explainable, Tensor, Tensor | None]], tokens: int) -> list[Tensor]:
    """:func:`score_masks` of requests sharing one ``joint`` forward."""
    request, row, units, width = [], [], [], []  # per copy
    for r, (x, masks, widths) in enumerate(requests):
        u = len(masks)
        request.append(torch.full((u,), r))
        row.append(torch.arange(u))
        units.append(torch.full((u,), x.num_units))
        width.append(torch.full((u,), x.shared.count) if widths is None else widths.cpu().long())
    request, row, units, width = (torch.cat(t) for t in (request, row, units, width))
    order = torch.argsort(units * (int(width.max()) + 1) + width, stable=True)  # by (S, width)
    out = [torch.full((len(m), x.shared.count), float("nan"), dtype=torch.float64) for x, m, _ in requests]
    sorted_units, sorted_width = units[order].tolist(), width[order].tolist()
    start = 0
    while start < len(order):  # the longest run of copies whose padded batch fits in ``tokens``
        end, longest, widest = start, 0, 0
        while end < len(order):
            u, w = max(longest, sorted_units[end]), max(widest, sorted_width[end])
            if end > start and (end + 1 - start) * (u + w) > tokens:
                break
            longest, widest, end = u, w, end + 1
        _score_batch(requests, request[order[start:end]], row[order[start:end]], widest, out)
        start = end
    return out


def _score_batch(requests: list[tuple[Explainable, Tensor, Tensor | None]], request: Tensor, row: Tensor,
                 width: int, out: list[Tensor]) -> None:
    """One joint forward of copies ``row[i]`` of requests ``request[i]`` (``(N,)`` each), their
    first ``width`` steps; each copy's scores written to its request's row of ``out``."""
    present = torch.unique(request).tolist()
    longest = max(requests[r][0].num_units for r in present)
    e, owner, parts = [], [], []
    for slot, r in enumerate(present):
        x, masks, _ = requests[r]
        rows = row[request == r]
        e.append(F.pad(apply(x, masks[rows]), (0, 0, 0, longest - x.num_units)))  # (n, S_max, D): zeros padded
        owner.append(torch.full((len(rows),), slot, dtype=torch.long))
        parts.append((r, rows))
    joint, keys = requests[present[0]][0].shared.joint, [requests[r][0].shared.key for r in present]
    with torch.no_grad():
        scores = joint(keys, torch.cat(e), torch.cat(owner), width).double().cpu()  # (N, width)
    done = 0
    for r, rows in parts:
        w = min(width, requests[r][0].shared.count)
        out[r][rows, :w] = scores[done:done + len(rows), :w]
        done += len(rows)
