"""Predictions that share one forward (a translator's target steps) are measured together:
the curves of all of them from one deduplicated batch, head importance from one forward per
group; attention × gradient from one fp64 pass per group. Against each prediction measured
alone: fp64 to 1e-12 on a toy model; a tiny trained translator (fp32) to 1e-6."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from attnlab.apps.explain import load, predictions
from attnlab.explain.evaluate import evaluate
from attnlab.explain.explainable import SHARED_BATCH, Explainable, Shared, groups
from attnlab.explain.faithfulness import (
    ERASER_BINS,
    curve_ks,
    faithfulness_many,
    faithfulness_shared,
)
from attnlab.explain.heads import head_importance
from attnlab.explain.integrated_gradients import STEPS
from attnlab.explain.methods import METHODS, pick

L, D, T = 70, 4, 3  # over the full-curve bound: the grid and the ERASER bins off it


def toy() -> tuple[list[Explainable], list[int]]:
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(L, D, generator=gen, dtype=torch.float64)
    w = torch.randn(D, 5, generator=gen, dtype=torch.float64)
    calls = []

    def every(e: torch.Tensor, need_weights: bool):
        calls.append(e.shape[0])
        logits = torch.tanh(e @ w).mean(1) * 4  # (S, 5)
        return torch.log_softmax(logits, -1)[:, [1, 3, 4]], []  # (S, T): three predictions

    shared = Shared(every, T)
    baseline = inputs.mean(0).expand(L, -1)
    xs = [Explainable(inputs, baseline, shared.column(t), [str(i) for i in range(L)], str(t), 0, torch.arange(L),
                      [], "mean", shared=shared, column=t) for t in range(T)]
    return xs, calls


def alone(x: Explainable) -> Explainable:
    return dataclasses.replace(x, shared=None, column=0, cache={})


def test_curves_of_a_shared_group_equal_each_prediction_alone():
    xs, calls = toy()
    gen = torch.Generator().manual_seed(1)
    attributions = [{f"m{i}": torch.rand(L, generator=gen, dtype=torch.float64) for i in range(2)} for _ in xs]
    attributions[1]["m1"] = attributions[0]["m0"].clone()  # same order, another prediction: its copies are shared
    together = faithfulness_shared(xs, attributions)
    points = len(set(curve_ks(L)) | {min(L, max(1, math.ceil(b * L))) for b in ERASER_BINS})
    assert sum(calls) == 5 * 2 * (points - 2) + 2  # 5 distinct orders over the 3 predictions, scored once
    for x, methods, got in zip(xs, attributions, together):
        want = faithfulness_many(alone(x), methods)
        for name in methods:
            for key in ("aopc", "deletion_auc", "insertion_auc", "comprehensiveness", "sufficiency"):
                assert abs(got[name][key] - want[name][key]) < 1e-12, (x.target, name, key)
            assert torch.allclose(torch.tensor(got[name]["deletion"]), torch.tensor(want[name]["deletion"]),
                                  rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["integrated_gradients", "saliency", "grad_input"])
def test_gradient_methods_of_a_shared_group_equal_each_prediction_alone(name):
    xs, calls = toy()
    method = METHODS[name]
    together = [method(x) for x in xs]
    assert len(calls) == (1 if name != "integrated_gradients" else math.ceil(T * STEPS / SHARED_BATCH))
    for x, got in zip(xs, together):
        torch.testing.assert_close(got, method(alone(x)), rtol=0, atol=1e-12)


def test_groups_are_consecutive_predictions_of_one_shared_forward():
    xs, _ = toy()
    lone = alone(xs[0])
    assert [len(g) for g in groups([lone, *xs, lone, lone])] == [1, 3, 1, 1]
    with pytest.raises(ValueError, match="share one"):
        faithfulness_shared([lone, xs[1]], [{}, {}])


def test_translator_steps_shared_equal_each_step_alone(tiny_checkpoints):
    loaded = load(tiny_checkpoints["transformer"], [])
    loaded.translate = lambda sources: ["a b c d"] * len(sources)  # a 2-step model's own output may be empty
    _, xs = predictions(loaded, ["the cat sees a dog ."])
    assert len(xs) > 1 and len(groups(xs)) == 1
    methods = pick(["saliency", "integrated_gradients", "attention_gradient", "flow", "random"])
    shared, single = evaluate(xs, methods), evaluate([alone(x) for x in xs], methods)
    for name in methods:
        for got, want in zip(shared.attributions[name], single.attributions[name]):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
        for got, want in zip(shared.curves[name], single.curves[name]):
            torch.testing.assert_close(torch.tensor(got["deletion"]), torch.tensor(want["deletion"]),
                                       rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(torch.tensor(got["insertion"]), torch.tensor(want["insertion"]),
                                       rtol=1e-5, atol=1e-6)
    model = xs[0].module
    together, apart = head_importance(xs, model), head_importance([alone(x) for x in xs], model)
    torch.testing.assert_close(together.masked, apart.masked, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together.gradient, apart.gradient, rtol=1e-5, atol=1e-6)
    assert abs(together.base_loss - apart.base_loss) < 1e-6
