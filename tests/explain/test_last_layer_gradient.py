"""Attention × gradient differentiates only the raw tensors its last layer is placed from: the
same attribution as the gradient of every layer taken in one fp64 backward (the computation
before), on GPT (one tensor per layer), a translator (its steps on one shared forward) and
HAN (one layer placed from several meta-paths' tensors)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from attnlab.apps.explain import load, predictions
from attnlab.explain.explainable import fp64
from attnlab.explain.methods import METHODS


def every_layer_gradient(x) -> torch.Tensor:
    with torch.enable_grad(), fp64(x.module):
        score, raw = x.run(x.inputs[None].double(), True)
        grads = torch.autograd.grad(score.sum(), raw, allow_unused=True)
    grads = [torch.zeros_like(r) if g is None else g for r, g in zip(raw, grads)]
    last, grad = x.layout([r.detach() for r in raw])[-1][0], x.layout(grads)[-1][0]
    return (last * grad).clamp_min(0).mean(dim=0)[x.query, x.units]


@pytest.mark.parametrize("kind", ["gpt2", "transformer", "han"])
def test_last_layer_gradient_equals_every_layers(tiny_checkpoints, kind):
    loaded = load(tiny_checkpoints[kind], [])
    if kind == "transformer":
        loaded.translate = lambda sources: ["a b c d"] * len(sources)
    _, xs = predictions(loaded, ["def fib(n):"] if kind == "gpt2" else [])
    largest = 0.0
    for x in xs[:4]:
        want = every_layer_gradient(dataclasses.replace(x, shared=None, cache={}))
        got = METHODS["attention_gradient"](x)
        torch.testing.assert_close(got.double(), want.double(), rtol=1e-9, atol=1e-12)
        largest = max(largest, float(want.abs().max()))
    assert largest > 0 or kind == "han"  # not all zero (the 2-step HAN's positive parts all are)
