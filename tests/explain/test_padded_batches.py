"""Several sentences' perturbed copies scored in one padded forward (explain/padded.py) give
the scores of each sentence's own forward: the Transformer and the RNN translator (fp32, to
1e-5 in log p), sentences and translations of different lengths, batches that mix them; and
the whole table of ``evaluate`` is the one measured sentence by sentence."""

from __future__ import annotations

import pytest
import torch

from attnlab.apps.explain import load, predictions
from attnlab.explain.evaluate import evaluate
from attnlab.explain.explainable import groups
from attnlab.explain.methods import pick
from attnlab.explain.padded import score_masks

SOURCES = ["the cat sees a dog .", "a dog .", "the small cat sees the big dog and a cat ."]
TRANSLATIONS = ["a b c d", "a b", "a b c d e f g"]  # a 2-step model's own output may be empty


def sentences(ckpt):
    loaded = load(ckpt, [])
    loaded.translate = lambda sources: TRANSLATIONS[: len(sources)]
    _, xs = predictions(loaded, SOURCES)
    return groups(xs)


def recorded(group_list) -> list[int]:
    """Wrap the joint forward: the number of sentences in each call."""
    joint, calls = group_list[0][0].shared.joint, []

    def counting(keys, e, owner):
        calls.append(len(keys))
        return joint(keys, e, owner)

    for group in group_list:
        group[0].shared.joint = counting
    return calls


@pytest.mark.parametrize("kind", ["transformer", "seq2seq"])
def test_padded_scores_equal_each_sentence_forward(tiny_checkpoints, kind):
    gs = sentences(tiny_checkpoints[kind])
    assert len(gs) == 3 and len({g[0].num_units for g in gs}) == 3 and len({len(g) for g in gs}) == 3
    gen = torch.Generator().manual_seed(0)
    requests = [(g[0], torch.rand(40, g[0].num_units, generator=gen) < 0.5) for g in gs]
    calls = recorded(gs)
    padded = score_masks(requests, tokens=600)  # ~20 copies a batch: several batches, some mixing sentences
    assert len(calls) > 3 and max(calls) > 1
    for g in gs:
        g[0].shared.joint = None
    alone = score_masks(requests)
    for (x, _), got, want in zip(requests, padded, alone):
        assert got.shape == want.shape == (40, x.shared.count)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_evaluate_with_padding_equals_sentence_by_sentence(tiny_checkpoints):
    methods = pick(["raw_attention", "saliency", "random"])
    gs = sentences(tiny_checkpoints["transformer"])
    calls = recorded(gs)
    together = evaluate([x for g in gs for x in g], methods)
    assert calls and max(calls) == 3  # every sentence's copies in one batch
    for g in gs:
        g[0].shared.joint = None
    apart = evaluate([x for g in gs for x in g], methods)
    for name in methods:
        for got, want in zip(together.curves[name], apart.curves[name]):
            for key in ("deletion", "insertion"):
                torch.testing.assert_close(torch.tensor(got[key]), torch.tensor(want[key]), rtol=0, atol=1e-5)
        for key, value in apart.table[name].items():
            assert abs(together.table[name][key] - value) < 1e-5, (name, key)
