"""AdditiveAttention (Bahdanau) against an fp64 formula written out with einsum.

The reference follows Bahdanau et al. 2015 and TensorFlow Addons' normalized form:
e_ij = (g v / ||v||)^T tanh(W_q q_i + W_k k_j + b). Tolerances: fp64 1e-12; fp32
with different chunk sizes 1e-5 (outputs) and 1e-4 (gradients).
"""

import math

import pytest
import torch
from torch.func import functional_call

from attnlab.attention import AdditiveAttention, attend, mask_from_lengths
from attnlab.errors import AttnlabError

B, LQ, LK, DQ, DK, DV, H = 2, 5, 7, 6, 4, 3, 8


def inputs(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*s, generator=g, dtype=dtype) for s in [(B, LQ, DQ), (B, LK, DK), (B, LK, DV)])


def make(normalize=False, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    attn = AdditiveAttention(DQ, DK, H, normalize=normalize, **kwargs).to(dtype)
    if normalize:  # move g and b away from their initial values so the test sees them
        with torch.no_grad():
            attn.g.fill_(0.7)
            attn.bias.normal_()
    return attn


def reference(attn, q, k, values, mask=None):
    """fp64 formula: scores, masked softmax, weighted sum."""
    p = {n: t.detach().double() for n, t in attn.named_parameters()}
    v = p["v"] * p["g"] / p["v"].norm() if attn.normalize else p["v"]
    b = p["bias"] if attn.normalize else torch.zeros(H, dtype=torch.float64)
    wq = torch.einsum("bid,hd->bih", q.double(), p["query_proj.weight"])
    wk = torch.einsum("bjd,hd->bjh", k.double(), p["key_proj.weight"])
    scores = torch.einsum("bijh,h->bij", torch.tanh(wq[:, :, None] + wk[:, None] + b), v)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ values.double(), weights


@pytest.mark.parametrize("normalize", [False, True])
def test_against_fp64_formula(normalize):
    attn = make(normalize)
    q, k, values = inputs()
    out, weights = attn(q, k, values, need_weights=True)
    ref_out, ref_weights = reference(attn, q, k, values)
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weights, ref_weights, rtol=1e-12, atol=1e-12)


def test_normalize_initial_values_follow_tfa():
    attn = AdditiveAttention(DQ, DK, H, normalize=True)
    assert attn.g.shape == () and math.isclose(attn.g.item(), math.sqrt(1 / H), rel_tol=1e-6)
    assert torch.equal(attn.bias, torch.zeros(H))
    torch.testing.assert_close(attn.effective_v().norm(), attn.g.detach(), rtol=1e-6, atol=0)
    assert attn.query_proj.bias is None and attn.key_proj.bias is None
    assert attn.v.abs().max() <= math.sqrt(3 / H)  # Glorot-uniform bound of a length-H vector


@pytest.mark.parametrize("normalize", [False, True])
def test_gradcheck_inputs_and_parameters(normalize):
    attn = make(normalize)
    names = [n for n, _ in attn.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in attn.parameters()]
    q, k, values = (t.requires_grad_() for t in inputs())
    mask = torch.rand(B, LQ, LK, generator=torch.Generator().manual_seed(3)) > 0.3

    def fn(q, k, values, *params):
        return functional_call(attn, dict(zip(names, params)), (q, k, values), {"mask": mask}).output

    assert torch.autograd.gradcheck(fn, (q, k, values, *params))


@pytest.mark.parametrize("normalize", [False, True])
def test_chunk_size_does_not_change_results(normalize):
    q, k, values = (t.requires_grad_() for t in inputs(torch.float32))
    results = []
    for budget in (2**30, 1):  # all queries in one block / one query per block
        attn = make(normalize, torch.float32, memory_budget=budget)
        out, weights = attn(q, k, values, need_weights=True)
        grads = torch.autograd.grad((out.square().sum() + weights.square().sum()), (q, k, values, *attn.parameters()))
        results.append((out, weights, *grads))
    for ours, ref in zip(*results):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("normalize", [False, True])
def test_bf16_autocast_close_to_fp32(normalize):
    attn = make(normalize, torch.float32)
    q, k, values = inputs(torch.float32)
    expected = attn(q, k, values).output
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(q, k, values).output
    torch.testing.assert_close(out.float(), expected, rtol=3e-2, atol=3e-2)
    out.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in attn.parameters())


def test_length_mask_and_fully_masked_rows():
    attn = make(True)
    q, k, values = (t.requires_grad_() for t in inputs())
    lengths_mask = mask_from_lengths(torch.tensor([LK, 3]))  # (B, 1, 1, Lk)
    row_mask = torch.ones(B, LQ, 1, dtype=torch.bool)
    row_mask[1, 2] = False  # query 2 of sentence 1 may attend to nothing
    out, weights = attn(q, k, values, mask=lengths_mask[:, 0] & row_mask, need_weights=True)
    ref_out, ref_weights = reference(attn, q, k, values, mask=(lengths_mask[:, 0] & row_mask).expand(B, LQ, LK))
    keep = row_mask.expand(B, LQ, 1)
    torch.testing.assert_close(out[keep[..., 0]], ref_out[keep[..., 0]], rtol=1e-12, atol=1e-12)
    assert torch.equal(out[1, 2], torch.zeros(DV, dtype=out.dtype))
    assert torch.equal(weights[1, 2], torch.zeros(LK, dtype=out.dtype))
    assert torch.equal(weights[1, :, 3:], torch.zeros(LQ, LK - 3, dtype=out.dtype))
    out.sum().backward()
    for t in (q, k, values, *attn.parameters()):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(q.grad[1, 2], torch.zeros(DQ, dtype=q.dtype))
    # the same mask in its (B, 1, 1, Lk) form from mask_from_lengths
    torch.testing.assert_close(attn(q, k, values, mask=lengths_mask).output[0], ref_out[0], rtol=1e-12, atol=1e-12)


def test_float_mask_is_added():
    attn = make()
    q, k, values = inputs()
    bias = torch.randn(B, 1, LK, dtype=torch.float64)
    out, weights = attn(q, k, values, mask=bias, need_weights=True)
    scores = attn.score(q, attn.precompute_keys(k))
    torch.testing.assert_close(weights, torch.softmax(scores + bias, dim=-1), rtol=1e-12, atol=1e-12)


def test_single_step_precomputed_keys_and_default_values():
    attn = make(True)
    q, k, _ = inputs()
    mask = torch.arange(LK)[None, :] < torch.tensor([[LK], [4]])  # (B, Lk)
    projected = attn.precompute_keys(k)  # once per source sentence
    for i in range(LQ):  # decoder steps
        out, weights = attn(q[:, i], k, mask=mask, need_weights=True, projected_keys=projected)
        ref_out, ref_weights = reference(attn, q[:, i : i + 1], k, k, mask=mask[:, None, :])
        assert out.shape == (B, DK) and weights.shape == (B, LK)
        torch.testing.assert_close(out, ref_out[:, 0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(weights, ref_weights[:, 0], rtol=1e-12, atol=1e-12)
    assert attn(q[:, 0], k).weights is None


def test_other_normalizers_go_through_the_core():
    attn = make()
    q, k, values = inputs()
    scores = attn.score(q, attn.precompute_keys(k))
    for name in ("sparsemax", "hardmax"):
        out, weights = attn(q, k, values, normalizer=name, need_weights=True)
        expected = attend(scores, values, normalizer=name)
        torch.testing.assert_close(out, expected.output, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(weights, expected.weights, rtol=1e-12, atol=1e-12)
    sampled = attn(q, k, values, normalizer="sample")
    assert sampled.log_prob.shape == (B, LQ) and (sampled.log_prob <= 0).all()


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        (((B, LQ, DQ + 1), (B, LK, DK)), {}, r"query must have shape \(B, Lq, 6\)"),
        (((B, LQ, DQ), (B + 1, LK, DK)), {}, r"keys must have shape \(2, Lk, 4\)"),
        (((B, LQ, DQ), (B, LK, DK), (B, LK + 1, DV)), {}, r"values must have shape \(2, 7, Dv\)"),
        (((B, LQ, DQ), (B, LK, DK)), {"mask": torch.ones(B, 3, 1, LK, dtype=torch.bool)}, "mask has 3 heads"),
        (((B, LQ, DQ), (B, LK, DK)), {"mask": torch.ones(B, LQ, LK + 1, dtype=torch.bool)}, "does not broadcast"),
        (((B, LQ, DQ), (B, LK, DK)), {"normalizer": "entmax"}, "normalizer must be one of"),
    ],
)
def test_clear_errors(args, kwargs, match):
    attn = make()
    tensors = [torch.randn(*s, dtype=torch.float64) for s in args]
    with pytest.raises(AttnlabError, match=match):
        attn(*tensors, **kwargs)


def test_errors_for_dtype_and_sizes():
    q, k, values = inputs()
    with pytest.raises(AttnlabError, match="share a dtype"):
        make()(q, k.float(), values)
    with pytest.raises(AttnlabError, match="hidden_dim must be positive"):
        AdditiveAttention(DQ, DK, 0)


@pytest.mark.parametrize("sizes", [(0, 3, 4), (2, 0, 4), (2, 3, 0), (0, 0, 0)])
@pytest.mark.parametrize("normalize", [False, True])
def test_zero_sizes_give_empty_or_zero_outputs(sizes, normalize):
    """Empty in, empty out: B, Lq or Lk = 0 (no key: zero output, like a fully masked row)."""
    b, lq, lk = sizes
    attn = AdditiveAttention(5, 6, 7, normalize=normalize)
    query = torch.randn(b, lq, 5, requires_grad=True)
    keys = torch.randn(b, lk, 6, requires_grad=True)
    out, weights = attn(query, keys, keys, need_weights=True)
    assert out.shape == (b, lq, 6) and weights.shape == (b, lq, lk)
    assert (out == 0).all()
    out.sum().backward()
    assert query.grad.shape == query.shape and keys.grad.shape == keys.shape
