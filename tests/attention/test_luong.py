"""LuongAttention (dot, general, concat; TFA's scale) against fp64 formulas from the paper.

e_ij = h_i . hbar_j | h_i^T W_a hbar_j | v_a^T tanh(W_a [h_i; hbar_j]), times g with scale.
Tolerances: fp64 1e-12; fp32 concat in one block vs one query per block 1e-5 / 1e-4 (gradients).
"""

import pytest
import torch
from torch.func import functional_call

from attnlab.attention import LuongAttention, concat_score, mask_from_lengths
from attnlab.errors import AttnlabError

B, LQ, LK, D, DK, DV = 2, 4, 6, 5, 3, 7


def make(score, scale=False, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    attn = LuongAttention(D, D if score == "dot" else DK, score=score, scale=scale, **kwargs).to(dtype)
    if scale:
        with torch.no_grad():
            attn.g.fill_(1.7)  # away from its initial 1 so the test sees it
    return attn


def inputs(score, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    dk = D if score == "dot" else DK
    return tuple(torch.randn(*s, generator=g, dtype=dtype) for s in [(B, LQ, D), (B, LK, dk), (B, LK, DV)])


def reference_scores(attn, h, hbar):
    """The paper's three scores in fp64, the concat one on an explicit [h_i; hbar_j]."""
    if attn.score_name == "dot":
        scores = torch.einsum("bid,bjd->bij", h, hbar)
    elif attn.score_name == "general":
        scores = torch.einsum("bid,de,bje->bij", h, attn.key_proj.weight.detach(), hbar)
    else:
        pairs = torch.cat([h[:, :, None].expand(-1, -1, LK, -1), hbar[:, None].expand(-1, LQ, -1, -1)], dim=-1)
        hidden = torch.tanh(torch.einsum("bijc,hc->bijh", pairs, attn.concat_proj.weight.detach()))
        scores = torch.einsum("bijh,h->bij", hidden, attn.v.detach())
    return attn.g.detach() * scores if attn.scale else scores


@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_against_fp64_formula(score, scale):
    attn = make(score, scale)
    h, hbar, values = inputs(score)
    lengths = mask_from_lengths(torch.tensor([LK, 2]))  # (B, 1, 1, Lk)
    out, weights = attn(h, hbar, values, mask=lengths, need_weights=True)
    expected_weights = torch.softmax(reference_scores(attn, h, hbar).masked_fill(~lengths[:, 0], float("-inf")), -1)
    torch.testing.assert_close(weights, expected_weights, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, expected_weights @ values, rtol=1e-12, atol=1e-12)


def test_scale_starts_at_one_and_concat_matches_score_function():
    attn = LuongAttention(D, DK, score="concat", scale=True, hidden_dim=9).double()
    assert attn.g.item() == 1.0 and attn.concat_proj.weight.shape == (9, D + DK)
    h, hbar, _ = inputs("concat")
    expected = concat_score(h, hbar, attn.concat_proj.weight, attn.v)
    torch.testing.assert_close(attn.score(h, attn.precompute_keys(hbar)), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_gradcheck_inputs_and_parameters(score):
    attn = make(score, scale=True)
    names = [n for n, _ in attn.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in attn.parameters()]
    h, hbar, values = (t.requires_grad_() for t in inputs(score))

    def fn(h, hbar, values, *params):
        return functional_call(attn, dict(zip(names, params)), (h, hbar, values)).output

    assert torch.autograd.gradcheck(fn, (h, hbar, values, *params))


def test_concat_chunk_size_does_not_change_results():
    h, hbar, values = (t.requires_grad_() for t in inputs("concat", torch.float32))
    results = []
    for budget in (2**30, 1):
        attn = make("concat", True, torch.float32, memory_budget=budget)
        out = attn(h, hbar, values).output
        results.append((out, *torch.autograd.grad(out.square().sum(), (h, hbar, values, *attn.parameters()))))
    for ours, ref in zip(*results):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_single_step_with_precomputed_keys(score):
    attn = make(score)
    h, hbar, values = inputs(score)
    full = attn(h, hbar, values, need_weights=True)
    projected = attn.precompute_keys(hbar)
    for i in range(LQ):
        step = attn(h[:, i], hbar, values, need_weights=True, projected_keys=projected)
        torch.testing.assert_close(step.output, full.output[:, i], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(step.weights, full.weights[:, i], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: LuongAttention(D, DK, score="dot"), r"score='dot' needs query_dim == key_dim, got 5 and 3"),
        (lambda: LuongAttention(D, D, score="location"), "score must be one of"),
        (lambda: LuongAttention(D, DK, score="concat", hidden_dim=0), "must be positive"),
    ],
)
def test_constructor_errors(build, match):
    with pytest.raises(AttnlabError, match=match):
        build()


def test_forward_errors():
    attn = make("general")
    h, hbar, values = inputs("general")
    with pytest.raises(AttnlabError, match=r"keys must have shape \(2, Lk, 3\)"):
        attn(h, hbar[..., :2], values)
    with pytest.raises(AttnlabError, match=r"projected_keys must have shape \(2, 6, P\)"):
        attn(h, hbar, values, projected_keys=attn.precompute_keys(hbar)[:, :3])


@pytest.mark.parametrize("sizes", [(0, 3, 4), (2, 0, 4), (2, 3, 0), (0, 0, 0)])
@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_zero_sizes_give_empty_or_zero_outputs(sizes, score):
    """Empty in, empty out: B, Lq or Lk = 0 (no key: zero output, like a fully masked row)."""
    b, lq, lk = sizes
    query_dim = 6 if score == "dot" else 5
    attn = LuongAttention(query_dim, 6, score=score)
    query = torch.randn(b, lq, query_dim, requires_grad=True)
    keys = torch.randn(b, lk, 6, requires_grad=True)
    out, weights = attn(query, keys, keys, need_weights=True)
    assert out.shape == (b, lq, 6) and weights.shape == (b, lq, lk)
    assert (out == 0).all()
    out.sum().backward()
    assert query.grad.shape == query.shape and keys.grad.shape == keys.shape
