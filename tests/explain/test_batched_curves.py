"""Every method's curves of one prediction scored together (deduplicated, batched) against
each curve computed here point by point, one copy a forward, in fp64; on an input longer
than the full-curve bound, so the 21-point grid and the ERASER bins off it are exercised."""

from __future__ import annotations

import math

import torch

from attnlab.explain.explainable import Explainable
from attnlab.explain.faithfulness import ERASER_BINS, curve_ks, faithfulness_many

L, D = 90, 5


def model() -> tuple[Explainable, list[int]]:
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(L, D, generator=gen, dtype=torch.float64)
    w = torch.randn(D, 3, generator=gen, dtype=torch.float64)
    calls = []

    def run(e: torch.Tensor, need_weights: bool):
        calls.append(e.shape[0])
        logits = torch.tanh(e @ w).mean(1) * 4  # (S, 3): every unit matters a little, nonlinearly
        return torch.log_softmax(logits, -1)[:, 1], []

    baseline = inputs.mean(0).expand(L, -1)
    return Explainable(inputs, baseline, run, [str(i) for i in range(L)], "1", 0, torch.arange(L), [], "mean"), calls


def by_hand(x: Explainable, attribution: torch.Tensor) -> dict[str, list[float]]:
    order = torch.argsort(attribution, descending=True, stable=True).tolist()

    def p(replaced: set[int]) -> float:
        e = x.inputs.clone()
        for j in replaced:
            e[j] = x.baseline[j]
        return float(x.run(e[None], False)[0].exp())

    bins = [min(L, max(1, math.ceil(b * L))) for b in ERASER_BINS]
    return {
        "deletion": [p(set(order[:k])) for k in curve_ks(L)],
        "insertion": [p(set(order[k:])) for k in curve_ks(L)],
        "comprehensiveness": sum(p(set()) - p(set(order[:k])) for k in bins) / len(bins),
        "sufficiency": sum(p(set()) - p(set(order[k:])) for k in bins) / len(bins),
    }


def test_all_methods_at_once_equal_each_curve_point_by_point():
    x, calls = model()
    gen = torch.Generator().manual_seed(1)
    attributions = {f"m{i}": torch.rand(L, generator=gen, dtype=torch.float64) for i in range(3)}
    attributions["copy"] = attributions["m0"].clone()  # the same order: its copies are shared
    measured = faithfulness_many(x, attributions, chunk=16)
    points = len(set(curve_ks(L)) | {min(L, max(1, math.ceil(b * L))) for b in ERASER_BINS})
    assert sum(calls) == 3 * 2 * (points - 2) + 2  # 3 distinct orders; the full and the empty input shared
    for name, attribution in attributions.items():
        want, got = by_hand(x, attribution), measured[name]
        for key in ("deletion", "insertion"):
            assert torch.allclose(torch.tensor(got[key]), torch.tensor(want[key]), rtol=0, atol=1e-12), (name, key)
        for key in ("comprehensiveness", "sufficiency"):
            assert abs(got[key] - want[key]) < 1e-12, (name, key)
        assert len(got["deletion"]) == 21
