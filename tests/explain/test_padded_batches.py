"""Several sentences' perturbed copies scored in one padded forward (explain/padded.py) give
the scores of each sentence's own forward: the Transformer and the RNN translator (fp32, to
1e-5 in log p), sentences and translations of different lengths, batches that mix them, each
copy's target cut to the steps that read it; the input gradients of a sentence's steps with
the target cut per batch equal those of the full forward; and the whole table of ``evaluate``
is the one measured sentence by sentence."""

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

    def counting(keys, e, owner, width):
        calls.append(len(keys))
        return joint(keys, e, owner, width)

    for group in group_list:
        group[0].shared.joint = counting
    return calls


@pytest.mark.parametrize("kind", ["transformer", "seq2seq"])
def test_padded_scores_equal_each_sentence_forward(tiny_checkpoints, kind):
    gs = sentences(tiny_checkpoints[kind])
    assert len(gs) == 3 and len({g[0].num_units for g in gs}) == 3 and len({len(g) for g in gs}) == 3
    gen = torch.Generator().manual_seed(0)
    masks = [torch.rand(40, g[0].num_units, generator=gen) < 0.5 for g in gs]
    widths = [torch.randint(1, len(g) + 1, (40,), generator=gen) for g in gs]  # steps that read each copy
    calls = recorded(gs)
    padded = score_masks([(g[0], m, w) for g, m, w in zip(gs, masks, widths)], tokens=300)  # ~15 copies a batch
    assert len(calls) > 4 and max(calls) > 1  # several batches, some mixing sentences
    for g in gs:
        g[0].shared.joint = None
    alone = score_masks([(g[0], m, None) for g, m in zip(gs, masks)])
    for g, w, got, want in zip(gs, widths, padded, alone):
        assert got.shape == want.shape == (40, len(g))
        read = torch.arange(len(g))[None] < w[:, None]  # (40, T): the columns each copy's readers need
        assert not got[read].isnan().any()
        torch.testing.assert_close(got[read], want[read], rtol=0, atol=1e-5)


def test_input_gradients_with_the_target_cut_equal_the_full_forward(tiny_checkpoints):
    x = sentences(tiny_checkpoints["transformer"])[2][0]
    t = x.shared.count
    e = x.inputs[None] + 0.1 * torch.randn(2 * t, *x.inputs.shape, generator=torch.Generator().manual_seed(0))
    columns = torch.arange(t).repeat_interleave(2)  # ascending, as integrated gradients asks
    cut = x.shared.gradients(e, columns, x.module, batch=5)  # batches end at steps 2, 4, 7: three widths
    x.shared.joint = None
    full = x.shared.gradients(e, columns, x.module, batch=5)
    torch.testing.assert_close(cut, full, rtol=0, atol=1e-5 * float(full.abs().max()))


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
