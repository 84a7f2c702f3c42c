"""Head importance and the pruning curve with every gate setting a copy of one batch equal the
same measures written head by head: each setting's heads removed by zeroing the columns of
``out_proj`` that read them, one forward per setting, one prediction at a time (a tiny
translator in fp64, its target steps on one shared forward); the gradient proxy against
central finite differences of those columns' scale."""

from __future__ import annotations

import dataclasses

import torch

from attnlab.apps.explain import load, predictions
from attnlab.explain.heads import attention_modules, head_importance, pruning_curve

EPS = 1e-6


def mean_loss(xs, layers, scales: dict[tuple[int, int], float]) -> tuple[float, list[float]]:
    """Mean -log p over the predictions, alone, with head (l, h)'s out_proj columns scaled."""
    saved = [m.out_proj.weight.detach().clone() for m in layers]
    with torch.no_grad():
        for (l, h), s in scales.items():
            dh = layers[l].head_dim
            layers[l].out_proj.weight[:, h * dh:(h + 1) * dh] *= s
        losses = [-float(dataclasses.replace(x, shared=None, cache={}).run(x.inputs[None], False)[0][0]) for x in xs]
        for m, w in zip(layers, saved):
            m.out_proj.weight.copy_(w)
    return sum(losses) / len(losses), losses


def test_batched_gate_settings_equal_heads_removed_one_setting_at_a_time(tiny_checkpoints):
    loaded = load(tiny_checkpoints["transformer"], [])
    loaded.translate = lambda sources: ["a b c d"] * len(sources)
    loaded.model.double()
    _, xs = predictions(loaded, ["the cat sees a dog ."])
    model, layers = xs[0].module, [m for _, m in attention_modules(xs[0].module)]
    importance = head_importance(xs, model)
    base, _ = mean_loss(xs, layers, {})
    assert abs(importance.base_loss - base) < 1e-10
    for l, m in enumerate(layers):
        for h in range(m.num_heads):
            masked, _ = mean_loss(xs, layers, {(l, h): 0.0})
            assert abs(float(importance.masked[l, h]) - (masked - base)) < 1e-10, (l, h)
            _, up = mean_loss(xs, layers, {(l, h): 1 + EPS})
            _, down = mean_loss(xs, layers, {(l, h): 1 - EPS})
            proxy = sum(abs(u - d) / (2 * EPS) for u, d in zip(up, down)) / len(xs)
            assert abs(float(importance.gradient[l, h]) - proxy) < 1e-5 * max(1.0, proxy), (l, h)
    assert float(importance.masked.abs().sum()) > 1e-3
    order = [int(i) for i in torch.argsort(importance.masked.flatten(), stable=True)]
    width = importance.masked.shape[1]
    for point in pruning_curve(xs, model, importance.masked):
        loss, _ = mean_loss(xs, layers, {divmod(i, width): 0.0 for i in order[:point["pruned"]]})
        assert abs(point["loss"] - loss) < 1e-10, point
