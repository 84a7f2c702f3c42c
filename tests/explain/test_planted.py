"""Planted models where the truth is known.

The prediction reads only input position K; the attention of the predicting query looks
at position J != K (and at itself). Gradient methods must rank K first, raw attention must
not, and the faithfulness table must rank the gradient methods above attention.
"""

from __future__ import annotations

import torch

from attnlab.explain.evaluate import evaluate
from attnlab.explain.explainable import Explainable
from attnlab.explain.faithfulness import faithfulness
from attnlab.explain.methods import METHODS

L, D, H, K, J, Q, CLASSES, TARGET = 7, 6, 2, 2, 4, 6, 5, 3


def planted(seed: int = 0) -> Explainable:
    """log p(TARGET) = log_softmax(W e_K + (A V)_Q)[TARGET] with V = 0: position K alone matters;
    every query attends to J (weight ~0.9) and itself."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(CLASSES, D, generator=gen, dtype=torch.float64)
    inputs = torch.randn(L, D, generator=gen, dtype=torch.float64)
    inputs[K] = w[TARGET] * 2  # the planted unit points at the target class
    scores = torch.full((L,), -4.0, dtype=torch.float64)
    scores[J] = 4.0
    value = torch.zeros(D, D, dtype=torch.float64, requires_grad=True)  # the values are discarded

    def run(e: torch.Tensor, need_weights: bool):
        a = (scores + torch.eye(L, dtype=e.dtype) * 1.5).softmax(-1).expand(e.shape[0], H, L, L)  # (S, H, L, L)
        a = a * (1 + 0 * value.sum())  # in the graph, as a model's weights are
        mixed = a.mean(1) @ (e @ value)  # (S, L, D): zero
        logits = e[:, K] @ w.T + mixed[:, Q] @ w.T
        return torch.log_softmax(logits, -1)[:, TARGET], [a] if need_weights else []

    return Explainable(inputs, torch.zeros_like(inputs), run, [f"u{i}" for i in range(L)], "class 3", Q,
                       torch.arange(L), [True], "zero")


def test_gradient_methods_rank_the_planted_position_first():
    x = planted()
    for name in ("saliency", "grad_input", "integrated_gradients"):
        assert int(METHODS[name](x).argmax()) == K, name
        assert float(METHODS[name](x)[[i for i in range(L) if i != K]].abs().max()) < 1e-12  # nothing else


def test_attention_methods_are_not_credited_with_it():
    x = planted()
    raw = METHODS["raw_attention"](x)
    assert int(raw.argmax()) == J and raw[K] < 0.05
    for name in ("rollout", "flow"):
        a = METHODS[name](x)
        assert int(a.argmax()) != K and a[K] < a.max() / 5, name
    assert float(METHODS["attention_gradient"](x).abs().max()) == 0  # the weights never reach the output


def test_the_faithfulness_table_ranks_gradients_above_attention():
    xs = [planted(seed) for seed in range(3)]
    evaluation = evaluate(xs, METHODS)
    ranked = evaluation.ranked()
    table = evaluation.table
    for name in ("saliency", "grad_input", "integrated_gradients"):
        for attention in ("raw_attention", "rollout", "flow", "attention_gradient"):
            assert ranked.index(name) < ranked.index(attention), (name, attention)
            assert table[name]["comprehensiveness"] > table[attention]["comprehensiveness"] + 0.05
            assert table[name]["sufficiency"] < table[attention]["sufficiency"] - 0.05
            assert table[name]["insertion_auc"] > table[attention]["insertion_auc"]


def test_deletion_curve_by_hand():
    """Deleting K first drops p to the no-evidence value in one step; the curve is measured
    at every k for a short input, and AOPC is the mean drop (fp64, computed here directly)."""
    x = planted()
    order = torch.tensor([K] + [i for i in range(L) if i != K], dtype=torch.float64)
    attribution = -torch.argsort(order).double()  # ranks: K first, then in index order
    result = faithfulness(x, attribution)
    p = lambda e: float(x.score(e[None]).exp())  # noqa: E731
    full, without_k = p(x.inputs), p(torch.where(torch.arange(L)[:, None] == K, 0.0, x.inputs))
    assert result["fractions"] == [k / L for k in range(L + 1)]
    assert abs(result["deletion"][0] - full) < 1e-12 and abs(result["deletion"][1] - without_k) < 1e-12
    assert abs(result["aopc"] - (full - (full + L * without_k) / (L + 1))) < 1e-12
    assert abs(result["insertion"][1] - full) < 1e-12  # K alone restores the prediction


def test_a_model_without_weights_skips_the_attention_methods():
    x = planted()
    run = x.run
    x.run = lambda e, need_weights: (run(e, False)[0], [])  # a model that returns no attention
    evaluation = evaluate([x], {n: METHODS[n] for n in ("raw_attention", "saliency")})
    assert list(evaluation.table) == ["saliency"] and "no attention weights" in evaluation.skipped["raw_attention"]
