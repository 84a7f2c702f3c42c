"""The shared core against an fp64 formula, and its promises as properties.

softmax(q k^T * scale + M) v in fp64 is the reference. Tolerances: fp64 1e-10,
fp32 2e-5, bf16 3e-2.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.attention import AttentionOutput, attend, causal_mask, scaled_dot_product_attention
from attnlab.errors import AttnlabError


def reference(q, k, v, mask=None, causal=False, scale=None):
    """fp64 softmax attention; fully masked rows give zeros."""
    q, k, v = q.double(), k.double(), v.double()
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    s = q @ k.transpose(-2, -1) * scale
    if causal:
        s = s.masked_fill(~causal_mask(q.shape[-2], k.shape[-2]), float("-inf"))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask.double()
    w = torch.softmax(s, -1).nan_to_num(0.0)
    return w @ v, w


def qkv(b=2, h=3, lq=5, lk=7, d=8, dv=8, dtype=torch.float32):
    return (torch.randn(b, h, lq, d, dtype=dtype), torch.randn(b, h, lk, d, dtype=dtype), torch.randn(b, h, lk, dv, dtype=dtype))


MASKS = {
    "none": lambda b, h, lq, lk: None,
    "key padding": lambda b, h, lq, lk: torch.rand(b, 1, 1, lk) < 0.7,
    "per head": lambda b, h, lq, lk: torch.rand(b, h, lq, lk) < 0.6,
    "float": lambda b, h, lq, lk: torch.randn(lq, lk),
    "empty rows": lambda b, h, lq, lk: torch.rand(b, h, lq, lk) < 0.5 * (torch.arange(lq) % 2)[:, None],
}


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("mask_kind", list(MASKS))
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_fp64_formula(need_weights, mask_kind, causal):
    q, k, v = qkv(lq=7, lk=7) if causal else qkv()
    mask = MASKS[mask_kind](2, 3, q.shape[-2], k.shape[-2])
    out = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal, need_weights=need_weights)
    ref_out, ref_w = reference(q, k, v, mask, causal)
    torch.testing.assert_close(out.output.double(), ref_out, atol=2e-5, rtol=1e-5)
    if need_weights:
        torch.testing.assert_close(out.weights.double(), ref_w, atol=2e-5, rtol=1e-5)
    else:
        assert out.weights is None


def test_causal_with_fewer_queries_is_bottom_right():
    q, k, v = qkv(lq=2, lk=6)
    out = scaled_dot_product_attention(q, k, v, causal=True, need_weights=True)
    ref_out, ref_w = reference(q, k, v, causal=True)
    torch.testing.assert_close(out.weights.double(), ref_w, atol=2e-5, rtol=0)
    assert (out.weights[..., 0, 5] == 0).all() and (out.weights[..., 0, 4] > 0).all()


def test_bf16_close_to_fp64():
    q, k, v = qkv(dtype=torch.bfloat16)
    for need_weights in (False, True):
        out = scaled_dot_product_attention(q, k, v, need_weights=need_weights)
        assert out.output.dtype == torch.bfloat16
        torch.testing.assert_close(out.output.double(), reference(q, k, v)[0], atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("mask_kind", ["none", "per head", "empty rows"])
def test_fused_and_plain_paths_agree_in_values_and_gradients(mask_kind):
    """need_weights=False (fused), need_weights=True (flash + log-sum-exp) and the plain
    path of attend() give the same output and the same gradients."""
    q, k, v = qkv()
    mask = MASKS[mask_kind](2, 3, 5, 7)
    grads, outs = [], []
    for path in ("fused", "weights", "plain"):
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
        if path == "plain":
            scores = leaves[0] @ leaves[1].transpose(-2, -1) * 8**-0.5
            out = attend(scores, leaves[2], mask=mask)
        else:
            out = scaled_dot_product_attention(*leaves, mask=mask, need_weights=path == "weights")
        out.output.backward(torch.ones_like(out.output))
        outs.append(out.output)
        grads.append([t.grad for t in leaves])
    for other in (1, 2):
        torch.testing.assert_close(outs[other], outs[0], atol=2e-5, rtol=1e-5)
        for g, g0 in zip(grads[other], grads[0]):
            torch.testing.assert_close(g, g0, atol=2e-5, rtol=1e-4)


def test_weights_gradient_matches_fp64():
    """Gradients flowing through the returned weights (e.g. an alignment loss) are exact."""
    q, k, v = qkv()
    mask = MASKS["empty rows"](2, 3, 5, 7)
    g = torch.randn(2, 3, 5, 7)
    leaves = [t.clone().requires_grad_(True) for t in (q, k)]
    w = scaled_dot_product_attention(*leaves, v, mask=mask, need_weights=True).weights
    (w * g).sum().backward()
    ref = [t.double().requires_grad_(True) for t in (q, k)]
    (reference(ref[0], ref[1], v, mask)[1] * g.double()).sum().backward()
    for got, want in zip(leaves, ref):
        torch.testing.assert_close(got.grad.double(), want.grad, atol=1e-5, rtol=1e-4)


def test_gradcheck_fp64_plain_path():
    q, k, v = (t.double().requires_grad_(True) for t in qkv(b=1, h=2, lq=3, lk=4, d=3, dv=2))
    mask = torch.tensor([[True, True, False, True], [False, False, False, False], [True, False, True, True]])

    def f(q, k, v):
        out = scaled_dot_product_attention(q, k, v, mask=mask, need_weights=True)
        return out.output, out.weights

    assert torch.autograd.gradcheck(f, (q, k, v))


def test_dropout_returns_the_weights_used():
    q, k, v = qkv()
    torch.manual_seed(1)
    out = scaled_dot_product_attention(q, k, v, dropout_p=0.5, need_weights=True)
    torch.testing.assert_close(out.weights.double(), reference(q, k, v)[1], atol=2e-5, rtol=0)
    assert not torch.allclose(out.output.double(), reference(q, k, v)[0], atol=1e-3)


def test_attention_output_unpacks_as_a_pair():
    q, k, v = qkv()
    output, weights = scaled_dot_product_attention(q, k, v, need_weights=True)
    assert isinstance(scaled_dot_product_attention(q, k, v), AttentionOutput)
    assert output.shape == (2, 3, 5, 8) and weights.shape == (2, 3, 5, 7)


def test_three_dimensional_inputs():
    q, k, v = torch.randn(2, 4, 6), torch.randn(2, 5, 6), torch.randn(2, 5, 3)
    out = scaled_dot_product_attention(q, k, v, need_weights=True)
    torch.testing.assert_close(out.output.double(), reference(q, k, v)[0], atol=2e-5, rtol=0)


@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.randn(2, 4, 8), torch.randn(2, 5, 6), torch.randn(2, 5, 6)), "share the last dim"),
        ((torch.randn(2, 4, 8), torch.randn(2, 5, 8), torch.randn(2, 6, 8)), "same length"),
        ((torch.randn(2, 4, 8), torch.randn(2, 5, 8).double(), torch.randn(2, 5, 8)), "dtype"),
        ((torch.randn(8), torch.randn(2, 5, 8), torch.randn(2, 5, 8)), "query must have shape"),
        ((torch.ones(2, 4, 8, dtype=torch.long),) * 3, "floating-point"),
        ((torch.randn(2, 4, 8), torch.ones(2, 5, 8, dtype=torch.long), torch.randn(2, 5, 8)), "key must be a floating"),
        ((torch.randn(2, 4, 8), torch.randn(3, 5, 8), torch.randn(3, 5, 8)), "batch dims"),
        ((torch.randn(2, 4, 8), torch.randn(2, 5, 8), torch.randn(1, 5, 8)), "batch dims"),
    ],
)
def test_clear_errors(args, match):
    with pytest.raises(AttnlabError, match=match):
        scaled_dot_product_attention(*args)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"dropout_p": -0.1}, "dropout_p"), ({"dropout_p": 1.5}, "dropout_p"), ({"dropout_p": float("nan")}, "dropout_p"),
     ({"scale": float("nan")}, "scale"), ({"scale": float("inf")}, "scale")],
)
@pytest.mark.parametrize("need_weights", [False, True])
def test_clear_errors_for_dropout_and_scale(kwargs, match, need_weights):
    with pytest.raises(AttnlabError, match=match):
        scaled_dot_product_attention(*qkv(), need_weights=need_weights, **kwargs)


@pytest.mark.parametrize("query_dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mask_dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("need_weights", [False, True])
def test_float_mask_of_another_dtype_blocks_the_same(query_dtype, mask_dtype, need_weights):
    """A float mask is converted to the scores' dtype once (masks.prepare_mask): a fully
    masked row gives zeros and the rest equals the fp64 formula, whatever the two dtypes."""
    q, k, v = qkv(dtype=query_dtype)
    mask = torch.randn(5, 7).masked_fill((torch.arange(5) % 2 == 1)[:, None], float("-inf")).to(mask_dtype)
    out = scaled_dot_product_attention(q, k, v, mask=mask, need_weights=need_weights)
    assert (out.output[..., 1::2, :] == 0).all()
    tol = 3e-2 if torch.bfloat16 in (query_dtype, mask_dtype) or mask_dtype == torch.float16 else 2e-5
    torch.testing.assert_close(out.output.double(), reference(q, k, v, mask)[0], atol=tol, rtol=tol)
    scores = q.double() @ k.double().transpose(-2, -1)
    assert (attend(scores, v.double(), mask=mask).output[..., 1::2, :] == 0).all()


def test_mask_that_does_not_broadcast_is_named():
    q, k, v = qkv()
    with pytest.raises(AttnlabError, match=r"mask has shape \(2, 3, 4\)"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(2, 3, 4, dtype=torch.bool))
    with pytest.raises(AttnlabError, match="bool"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(5, 7, dtype=torch.int64))


@st.composite
def attention_case(draw):
    b, h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    lq, lk, d = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**16))
    density = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, n, d, generator=gen) for n in (lq, lk, lk))
    mask = torch.rand(b, h, lq, lk, generator=gen) < density
    return q, k, v, mask


@settings(max_examples=40, deadline=None)
@given(attention_case(), st.sampled_from(["fused", "weights", "softmax", "sparsemax", "hardmax"]))
def test_properties_over_random_shapes_and_masks(case, path):
    """Weights sum to 1 over allowed keys and are 0 on blocked ones; values at blocked keys
    have no effect; rows with no allowed key give zero output and finite gradients."""
    q, k, v, mask = case
    q.requires_grad_(True)

    def run(values):
        if path in ("fused", "weights"):
            out = scaled_dot_product_attention(q, k, values, mask=mask, need_weights=True)
            return out if path == "weights" else out._replace_output(
                scaled_dot_product_attention(q, k, values, mask=mask).output
            )
        scores = q @ k.transpose(-2, -1)
        return attend(scores, values, mask=mask, normalizer=path)

    out = run(v)
    has_keys = mask.any(-1)
    sums = out.weights.sum(-1)
    torch.testing.assert_close(sums[has_keys], torch.ones_like(sums[has_keys]), atol=1e-5, rtol=0)
    assert (out.weights[~mask] == 0).all()
    assert (out.output[~has_keys] == 0).all()
    poisoned = v.clone()
    poisoned[~mask.any(-2)[..., None].expand_as(v)] = 1e6  # keys no query may see
    torch.testing.assert_close(run(poisoned).output, out.output)
    if path != "hardmax":  # hardmax is piecewise constant: no gradient path to q
        out.output.sum().backward()
        assert torch.isfinite(q.grad).all()


def test_path_choice():
    """The measured choices: fused without weights, flash + log-sum-exp for fp32 weights,
    plain for bf16 weights, dropout with weights, and short bf16 training."""
    from attnlab.kernels.backend import choose_path

    q, k, v = qkv()
    assert choose_path(q, k, v, need_weights=False, dropout_p=0.0) == "fused"
    assert choose_path(q, k, v, need_weights=True, dropout_p=0.0) == "fused_weights"
    assert choose_path(q, k, v, need_weights=True, dropout_p=0.1) == "plain"
    qb, kb = q.bfloat16().requires_grad_(True), k.bfloat16()
    assert choose_path(qb, kb, v.bfloat16(), need_weights=True, dropout_p=0.0) == "plain"
    assert choose_path(qb, kb, v.bfloat16(), need_weights=False, dropout_p=0.0) == "plain"
    assert choose_path(qb.detach(), kb, v.bfloat16(), need_weights=False, dropout_p=0.0) == "fused"
    assert choose_path(qb, kb, v.bfloat16(), need_weights=False, dropout_p=0.0, causal_only=True) == "causal_bmm"
    assert choose_path(qb, kb, v.bfloat16(), need_weights=False, dropout_p=0.1, causal_only=True) == "plain"
    assert choose_path(q, k, v, need_weights=False, dropout_p=0.0, causal_only=True) == "fused"  # fp32
    long_q = torch.randn(1, 1, 512, 8, dtype=torch.bfloat16, requires_grad=True)
    assert choose_path(long_q, long_q, long_q, need_weights=False, dropout_p=0.0) == "fused"


@pytest.mark.parametrize(
    "scores,value,kwargs,match",
    [
        (torch.ones(2, 3, 4, dtype=torch.long), torch.randn(2, 4, 5), {}, "scores must be a floating"),
        (torch.randn(2, 3, 4), torch.ones(2, 4, 5, dtype=torch.long), {}, "value must be a floating"),
        (torch.randn(3, 3, 4), torch.randn(2, 4, 5), {}, "do not broadcast"),
        (torch.randn(2, 3, 4), torch.randn(2, 5, 5), {}, "disagree on Lk"),
        (torch.randn(2, 3, 4), torch.randn(2, 4, 5), {"dropout_p": -0.5}, "dropout_p"),
    ],
)
def test_attend_clear_errors(scores, value, kwargs, match):
    with pytest.raises(AttnlabError, match=match):
        attend(scores, value, **kwargs)


# --- one decoder step and the inputs' dtype: what the RNN decoder's mechanisms share -----
def test_attend_step_is_attend_with_one_query():
    from attnlab.attention.core import attend_step

    scores, values = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, 4, dtype=torch.float64)
    mask = torch.rand(3, 6) > 0.3
    mask[1] = False  # a row with nothing to attend to: zeros
    out = attend_step(scores, values, mask)
    want = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1).nan_to_num(0.0)
    torch.testing.assert_close(out.weights, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.output, torch.einsum("bj,bjd->bd", want, values), rtol=1e-12, atol=1e-12)
    assert out.output.shape == (3, 4) and out.log_prob is None


def test_weighted_sum_of_one_step():
    from attnlab.attention.core import weighted_sum

    weights, values = torch.rand(3, 6, dtype=torch.float64), torch.randn(3, 6, 4, dtype=torch.float64)
    torch.testing.assert_close(weighted_sum(weights, values), torch.einsum("bj,bjd->bd", weights, values))


def _mechanisms():
    from attnlab.attention import (
        AdditiveAttention,
        CoverageAttention,
        LocationSensitiveAttention,
        LuongAttention,
    )
    from attnlab.attention.hard import HardAttention
    from attnlab.attention.local import LocalAttention
    from attnlab.attention.monotonic import MonotonicAttention

    step = {"previous": torch.rand(2, 5), "cumulative": torch.rand(2, 5)}
    return {
        "additive": (AdditiveAttention(4, 4, 8), {}),
        "additive-normalized": (AdditiveAttention(4, 4, 8, normalize=True), {}),
        "luong-general": (LuongAttention(4, 4, score="general"), {}),
        "luong-concat": (LuongAttention(4, 4, score="concat"), {}),
        "luong-dot-scaled": (LuongAttention(4, 4, score="dot", scale=True), {}),
        "location": (LocationSensitiveAttention(4, 4, 8, n_filters=2, kernel_size=3), step),
        "coverage": (CoverageAttention(4, 4, 8), {"coverage": step["cumulative"]}),
        "monotonic": (MonotonicAttention(4, 4, 8), {"previous": step["previous"]}),
        "hard": (HardAttention(AdditiveAttention(4, 4, 8)).eval(), {}),
        "local-p": (LocalAttention(4, 4, window=1), {"step": 1}),
    }


@pytest.mark.parametrize("name", list(_mechanisms()))
def test_inputs_of_another_dtype_than_the_parameters_are_a_clear_error_as_in_mha(name):
    """fp64 inputs on fp32 parameters: the ValueError MultiHeadAttention gives, not torch's raw
    RuntimeError from a matmul."""
    from attnlab.attention import MultiHeadAttention

    module, extra = _mechanisms()[name]
    query, keys = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 5, 4, dtype=torch.float64)
    with pytest.raises(AttnlabError) as error:
        module(query, keys, keys, **extra)
    with pytest.raises(AttnlabError) as mha_error:
        MultiHeadAttention(4, 2)(query[:, None], keys, keys)
    assert isinstance(error.value, ValueError)
    assert str(error.value) == str(mha_error.value) == (
        "query must be a floating-point tensor of the module's dtype torch.float32, got torch.float64"
    )
    module(query.float(), keys.float(), keys.float(), **extra)  # the module's own dtype runs
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts the inputs: allowed
        module(query.float(), keys.float(), keys.float(), **extra)
