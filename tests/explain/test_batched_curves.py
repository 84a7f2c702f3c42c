"""Every method's curves of one prediction scored together (deduplicated, batched) against
each curve computed here point by point, one copy a forward, in fp64; on an input longer
than the full-curve bound, so the default 11-point grid, the finer 21-point one and the ERASER
bins off them are exercised."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.explain.explainable import Explainable
from attnlab.explain.faithfulness import ERASER_BINS, POINTS, curve_ks, faithfulness_many

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


def by_hand(x: Explainable, attribution: torch.Tensor, grid: int) -> dict[str, list[float]]:
    order = torch.argsort(attribution, descending=True, stable=True).tolist()

    def p(replaced: set[int]) -> float:
        e = x.inputs.clone()
        for j in replaced:
            e[j] = x.baseline[j]
        return float(x.run(e[None], False)[0].exp())

    bins = [min(L, max(1, math.ceil(b * L))) for b in ERASER_BINS]
    return {
        "deletion": [p(set(order[:k])) for k in curve_ks(L, grid)],
        "insertion": [p(set(order[k:])) for k in curve_ks(L, grid)],
        "comprehensiveness": sum(p(set()) - p(set(order[:k])) for k in bins) / len(bins),
        "sufficiency": sum(p(set()) - p(set(order[k:])) for k in bins) / len(bins),
    }


@pytest.mark.parametrize("grid", [POINTS, 21])
def test_all_methods_at_once_equal_each_curve_point_by_point(grid):
    x, calls = model()
    gen = torch.Generator().manual_seed(1)
    attributions = {f"m{i}": torch.rand(L, generator=gen, dtype=torch.float64) for i in range(3)}
    attributions["copy"] = attributions["m0"].clone()  # the same order: its copies are shared
    measured = faithfulness_many(x, attributions, chunk=16, points=grid)
    points = len(set(curve_ks(L, grid)) | {min(L, max(1, math.ceil(b * L))) for b in ERASER_BINS})
    assert sum(calls) == 3 * 2 * (points - 2) + 2  # 3 distinct orders; the full and the empty input shared
    for name, attribution in attributions.items():
        want, got = by_hand(x, attribution, grid), measured[name]
        for key in ("deletion", "insertion"):
            assert torch.allclose(torch.tensor(got[key]), torch.tensor(want[key]), rtol=0, atol=1e-12), (name, key)
        for key in ("comprehensiveness", "sufficiency"):
            assert abs(got[key] - want[key]) < 1e-12, (name, key)
        assert len(got["deletion"]) == grid


def test_the_default_grid_is_eleven_points_and_fewer_than_two_is_refused():
    assert POINTS == 11 and curve_ks(100) == list(range(0, 101, 10))
    with pytest.raises(ValueError, match="curve points"):
        curve_ks(100, 1)
