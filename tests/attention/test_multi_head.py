"""MultiHeadAttention against torch.nn.MultiheadAttention holding the same weights.

Outputs, weights and gradients agree for every mask kind, kdim/vdim, bias on/off,
averaged and per-head weights. Tolerance (fp32): atol 1e-5, rtol 1e-4.
"""

import pytest
import torch
from torch import nn

from attnlab.attention import KVCache, MultiHeadAttention, causal_mask, from_torch_masks
from attnlab.errors import AttnlabError

E, H, B, LQ, LK = 16, 4, 3, 5, 6
TOL = dict(atol=1e-5, rtol=1e-4)


def torch_masks(kind):
    """(attn_mask, key_padding_mask) in nn.MultiheadAttention's convention (True = blocked)."""
    if kind == "none":
        return None, None
    if kind == "key padding":
        kpm = torch.zeros(B, LK, dtype=torch.bool)
        kpm[0, -2:] = True
        kpm[1, -1] = True
        return None, kpm
    if kind == "bool 2d":
        return torch.rand(LQ, LK) < 0.3, None
    if kind == "bool per head":
        m = torch.rand(B * H, LQ, LK) < 0.3
        m[..., 0] = False  # every query keeps one key: nn.MultiheadAttention gives NaN otherwise
        return m, None
    if kind == "float":
        return torch.randn(LQ, LK), None
    if kind == "float + padding":
        kpm = torch.zeros(B, LK)
        kpm[:, -1] = float("-inf")
        return torch.randn(LQ, LK), kpm
    raise ValueError(kind)




@pytest.mark.parametrize("mask_kind", ["none", "key padding", "bool 2d", "bool per head", "float", "float + padding"])
@pytest.mark.parametrize("average", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kv_dims", [(None, None), (10, 12)])
def test_parity_with_torch(mask_kind, average, bias, kv_dims):
    kdim, vdim = kv_dims
    ref = nn.MultiheadAttention(E, H, bias=bias, kdim=kdim, vdim=vdim, batch_first=True)
    ours = MultiHeadAttention.from_torch(ref)
    q = torch.randn(B, LQ, E, requires_grad=True)
    k = torch.randn(B, LK, kdim or E, requires_grad=True)
    v = torch.randn(B, LK, vdim or E, requires_grad=True)
    attn_mask, kpm = torch_masks(mask_kind)
    ref_out, ref_w = ref(q, k, v, attn_mask=attn_mask, key_padding_mask=kpm, average_attn_weights=average)
    mask = from_torch_masks(attn_mask, kpm, num_heads=H)
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    out = ours(*leaves, mask=mask, need_weights=True, average_weights=average)
    torch.testing.assert_close(out.output, ref_out, **TOL)
    torch.testing.assert_close(out.weights, ref_w, **TOL)
    g = torch.randn_like(ref_out)
    ref_out.backward(g)
    out.output.backward(g)
    for ours_leaf, ref_leaf in zip(leaves, (q, k, v)):
        torch.testing.assert_close(ours_leaf.grad, ref_leaf.grad, **TOL)
    ref_weight_grads = (
        ref.in_proj_weight.grad.chunk(3) if ref._qkv_same_embed_dim
        else (ref.q_proj_weight.grad, ref.k_proj_weight.grad, ref.v_proj_weight.grad)
    )
    for proj, ref_grad in zip((ours.q_proj, ours.k_proj, ours.v_proj), ref_weight_grads):
        torch.testing.assert_close(proj.weight.grad, ref_grad, **TOL)
    torch.testing.assert_close(ours.out_proj.weight.grad, ref.out_proj.weight.grad, **TOL)


def test_self_attention_causal_matches_torch():
    ref = nn.MultiheadAttention(E, H, batch_first=True)
    ours = MultiHeadAttention.from_torch(ref)
    x = torch.randn(B, LQ, E)
    blocked = ~causal_mask(LQ)
    ref_out, ref_w = ref(x, x, x, attn_mask=blocked)
    out = ours(x, causal=True, need_weights=True)
    torch.testing.assert_close(out.output, ref_out, **TOL)
    torch.testing.assert_close(out.weights, ref_w, **TOL)


def test_with_and_without_weights_same_output_and_grads():
    mha = MultiHeadAttention(E, H)
    x = torch.randn(B, LQ, E)
    results = []
    for need in (False, True):
        mha.zero_grad()
        out = mha(x, causal=True, need_weights=need)
        out.output.sum().backward()
        results.append((out.output.detach(), mha.q_proj.weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0], **TOL)
    torch.testing.assert_close(results[0][1], results[1][1], **TOL)


def test_grouped_query_attention_equals_repeated_heads():
    """GQA with Hkv key/value heads == full MHA whose kv projections repeat each group's weights."""
    gqa = MultiHeadAttention(E, H, num_kv_heads=2)
    full = MultiHeadAttention(E, H)
    dh = E // H
    with torch.no_grad():
        full.q_proj.load_state_dict(gqa.q_proj.state_dict())
        full.out_proj.load_state_dict(gqa.out_proj.state_dict())
        for src, dst in ((gqa.k_proj, full.k_proj), (gqa.v_proj, full.v_proj)):
            dst.weight.copy_(src.weight.view(2, dh, E).repeat_interleave(2, dim=0).reshape(E, E))
            dst.bias.copy_(src.bias.view(2, dh).repeat_interleave(2, dim=0).reshape(E))
    x = torch.randn(B, LQ, E)
    torch.testing.assert_close(gqa(x, causal=True).output, full(x, causal=True).output, **TOL)
    assert gqa.k_proj.weight.shape == (2 * dh, E)


def test_dropout_only_in_training():
    mha = MultiHeadAttention(E, H, dropout=0.5)
    x = torch.randn(B, LQ, E)
    mha.eval()
    torch.testing.assert_close(mha(x).output, mha(x).output)
    mha.train()
    assert not torch.allclose(mha(x).output, mha(x).output)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(embed_dim=100, num_heads=3), r"embed_dim \(100\) must be divisible by num_heads \(3\)"),
        (dict(embed_dim=16, num_heads=4, num_kv_heads=3), r"num_heads \(4\) must be divisible by num_kv_heads \(3\)"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(AttnlabError, match=match):
        MultiHeadAttention(**kwargs)


def test_forward_errors_name_the_argument():
    mha = MultiHeadAttention(E, H)
    with pytest.raises(AttnlabError, match=r"query must have shape \(B, L, 16\)"):
        mha(torch.randn(B, LQ, 8))
    with pytest.raises(AttnlabError, match="disagree"):
        mha(torch.randn(B, LQ, E), torch.randn(B + 1, LK, E))
    with pytest.raises(AttnlabError, match="does not broadcast"):
        mha(torch.randn(B, LQ, E), mask=torch.ones(B, LQ, LQ + 1, dtype=torch.bool))


@pytest.mark.parametrize("extra", [(True, False), (False, True), (True, True)], ids=["bias_kv", "zero_attn", "both"])
@pytest.mark.parametrize("mask_kind", ["none", "key padding", "bool per head", "float + padding", "causal"])
@pytest.mark.parametrize("kv_dims", [(None, None), (10, 12)])
def test_against_torch_add_bias_kv_and_add_zero_attn(extra, mask_kind, kv_dims):
    """``nn.MultiheadAttention(add_bias_kv=..., add_zero_attn=...)``: outputs, per-head and
    averaged weights, gradients of inputs, projections and the bias key/value."""
    add_bias_kv, add_zero_attn = extra
    kdim, vdim = kv_dims
    if mask_kind == "causal" and kdim is not None:
        pytest.skip("causal self-attention")
    torch.manual_seed(3)
    ref = nn.MultiheadAttention(E, H, kdim=kdim, vdim=vdim, batch_first=True,
                                add_bias_kv=add_bias_kv, add_zero_attn=add_zero_attn)
    ours = MultiHeadAttention.from_torch(ref)
    length = LQ if mask_kind == "causal" else LK
    q = torch.randn(B, LQ, E, requires_grad=True)
    k = torch.randn(B, length, kdim or E, requires_grad=True)
    v = torch.randn(B, length, vdim or E, requires_grad=True)
    if mask_kind == "causal":
        attn_mask, kpm, mask = ~causal_mask(LQ), None, None
    else:
        attn_mask, kpm = torch_masks(mask_kind)
        mask = from_torch_masks(attn_mask, kpm, num_heads=H)
    for average in (True, False):
        ref_out, ref_w = ref(q, k, v, attn_mask=attn_mask, key_padding_mask=kpm, average_attn_weights=average)
        leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
        out = ours(*leaves, mask=mask, causal=mask_kind == "causal", need_weights=True, average_weights=average)
        assert out.weights.shape[-1] == length + add_bias_kv + add_zero_attn
        torch.testing.assert_close(out.output, ref_out, **TOL)
        torch.testing.assert_close(out.weights, ref_w, **TOL)
    g = torch.randn_like(ref_out)
    for p in (*ref.parameters(), *ours.parameters()):
        p.grad = None
    ref_out.backward(g)
    out.output.backward(g)
    for ours_leaf, ref_leaf in zip(leaves, (q, k, v)):
        torch.testing.assert_close(ours_leaf.grad, ref_leaf.grad, **TOL)
    if add_bias_kv:
        torch.testing.assert_close(ours.bias_k.grad, ref.bias_k.grad, **TOL)
        torch.testing.assert_close(ours.bias_v.grad, ref.bias_v.grad, **TOL)
    torch.testing.assert_close(ours.out_proj.weight.grad, ref.out_proj.weight.grad, **TOL)


def test_extra_keys_with_a_cache_equal_the_uncached_call():
    """The bias and zero keys are appended at every call, never cached."""
    mha = MultiHeadAttention(E, H, add_bias_kv=True, add_zero_attn=True).eval()
    x = torch.randn(B, LQ, E)
    full = mha(x, causal=True).output
    cache = KVCache()
    steps = [mha(x[:, t : t + 1], causal=True, cache=cache).output for t in range(LQ)]
    torch.testing.assert_close(torch.cat(steps, 1), full, **TOL)


def test_dropout_out_of_range_is_a_clear_error():
    for dropout in (-0.1, 1.5):
        with pytest.raises(AttnlabError, match="dropout"):
            MultiHeadAttention(E, H, dropout=dropout)


def test_integer_and_mixed_dtype_inputs_are_clear_errors():
    mha = MultiHeadAttention(E, H)
    x = torch.randn(B, LQ, E)
    for args in ((x.long(),), (x, x.double(), x.double()), (x.double(),)):
        with pytest.raises(AttnlabError, match="dtype"):
            mha(*args)


def _reference_with_bias(mha, x, bias, allowed):
    """softmax(q k^T / sqrt(Dh) + bias, blocked = -inf) v W_o, written out."""
    b, length, _ = x.shape
    q, k, v = (proj(x).view(b, length, H, E // H).transpose(1, 2) for proj in (mha.q_proj, mha.k_proj, mha.v_proj))
    scores = q @ k.transpose(-1, -2) * (E // H) ** -0.5 + bias
    weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    return mha.out_proj((weights @ v).transpose(1, 2).reshape(b, length, E)), weights


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("given", ["tensor", "function", "part"])
def test_score_bias_is_added_to_the_scores(need_weights, given):
    """A score bias (ALiBi here) as a tensor, a function of q/k, or the layer's own part
    equals the written-out formula, with a padding mask, on the fused and weights paths."""
    from attnlab.attention.positional import alibi_bias

    def alibi(q, k):
        return alibi_bias(H, q.shape[2], k.shape[2])  # (H, Lq, Lk)

    mha = MultiHeadAttention(E, H, score_bias=alibi if given == "part" else None).eval()
    x = torch.randn(B, LK, E)
    allowed = torch.ones(B, 1, 1, LK, dtype=torch.bool)
    allowed[0, ..., -2:] = False
    per_call = {"tensor": alibi_bias(H, LK), "function": alibi, "part": None}[given]
    out = mha(x, mask=allowed, score_bias=per_call, need_weights=need_weights, average_weights=False)
    expected, weights = _reference_with_bias(mha, x, alibi_bias(H, LK), allowed)
    torch.testing.assert_close(out.output, expected, **TOL)
    if need_weights:
        torch.testing.assert_close(out.weights, weights, **TOL)


def test_score_bias_of_the_wrong_shape_is_a_clear_error():
    mha = MultiHeadAttention(E, H)
    with pytest.raises(AttnlabError, match="score_bias has shape"):
        mha(torch.randn(B, LQ, E), score_bias=torch.zeros(H + 1, LQ, LQ))
