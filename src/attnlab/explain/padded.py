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

The adapter states how (:attr:`Shared.joint` ``(keys, e (N, S_max, D), owner (N,)) ->
(N, T_max)``, copy i of the sentence whose :attr:`Shared.key` is ``keys[owner[i]]``).
Requests are ordered by (S, T) before they are cut into batches of at most ``tokens``
padded positions ``N (S_max + T_max)``, so a batch pads little.

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


def score_masks(requests: list[tuple[Explainable, Tensor]], chunk: int = CHUNK,
                tokens: int = TOKENS) -> list[Tensor]:
    """``(U_r, T_r)`` for each request ``(x, masks (U_r, L_r))``: the scores of every
    prediction of ``x``'s group on each copy (``masks``' units replaced), without gradients.

    Requests whose :class:`Shared` states a ``joint`` forward are scored together in padded
    batches of at most ``tokens`` positions; any other, by its own forward, ``chunk`` copies
    a pass."""
    out: list[Tensor | None] = [None] * len(requests)
    pooled: dict[int, list[int]] = {}  # id(joint) -> request indices
    for r, (x, masks) in enumerate(requests):
        if not len(masks):
            out[r] = torch.zeros(0, x.shared.count if x.shared is not None else 1, dtype=torch.float64)
        elif x.shared is not None and x.shared.joint is not None:
            pooled.setdefault(id(x.shared.joint), []).append(r)
        else:
            out[r] = scored(run_of(x), apply(x, masks), chunk).double().cpu().view(len(masks), -1)
    for indices in pooled.values():
        for r, scores in zip(indices, _joint([requests[r] for r in indices], tokens)):
            out[r] = scores
    return out


def _joint(requests: list[tuple[Explainable, Tensor]], tokens: int) -> list[Tensor]:
    """:func:`score_masks` of requests sharing one ``joint`` forward."""
    def size(r: int) -> tuple[int, int]:
        x = requests[r][0]
        return x.num_units, x.shared.count

    order = sorted(range(len(requests)), key=size)  # similar lengths side by side: little padding
    out = [torch.empty(len(m), x.shared.count, dtype=torch.float64) for x, m in requests]
    batch: list[tuple[int, int, int]] = []  # (request, first row, end row)
    copies = longest = 0
    for r in order:
        start, total = 0, len(requests[r][1])
        while start < total:
            fit = max(1, tokens // max(longest, sum(size(r)))) - copies  # copies that still fit
            if fit <= 0:
                _score_batch(requests, batch, out)
                batch, copies, longest = [], 0, 0
                continue
            end = min(total, start + fit)
            batch.append((r, start, end))
            copies, longest, start = copies + end - start, max(longest, sum(size(r))), end
    if batch:
        _score_batch(requests, batch, out)
    return out


def _score_batch(requests: list[tuple[Explainable, Tensor]], batch: list[tuple[int, int, int]],
                 out: list[Tensor]) -> None:
    """One joint forward of the copies ``batch`` names; each request's rows written to ``out``."""
    width = max(requests[r][0].num_units for r, _, _ in batch)
    keys, slot, parts, owner = [], {}, [], []
    for r, start, end in batch:
        x, masks = requests[r]
        if r not in slot:
            slot[r] = len(keys)
            keys.append(x.shared.key)
        e = apply(x, masks[start:end])  # (n, L_r, D)
        parts.append(F.pad(e, (0, 0, 0, width - x.num_units)))  # (n, S_max, D): zeros where padded
        owner.append(torch.full((end - start,), slot[r], dtype=torch.long))
    joint = requests[batch[0][0]][0].shared.joint
    with torch.no_grad():
        scores = joint(keys, torch.cat(parts), torch.cat(owner)).double().cpu()  # (N, T_max)
    row = 0
    for r, start, end in batch:
        count = requests[r][0].shared.count
        out[r][start:end] = scores[row:row + end - start, :count]
        row += end - start
