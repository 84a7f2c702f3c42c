"""Every path of ``scaled_dot_product_attention`` against the fp64 formula, as a property.

Paths: ``fused`` (PyTorch's kernel), ``fused_weights`` (flash + weights from its
log-sum-exp), ``plain`` (scores -> mask -> softmax -> sum), ``causal_kernel`` and
``self_kernel`` (attnlab's C kernel, causal and unmasked; ``+ "_weights"``: with weights
from its log-sum-exp), ``causal_bmm`` and ``self_bmm``
(batched products with their own backward), and ``auto`` (whatever
:func:`attnlab.kernels.backend.choose_path` picks). Each path is forced (the choice is
patched) wherever it computes the inputs' case, over:

- layouts of each of q, k, v: contiguous, last dim strided (the transposed copy of a
  transpose: stride(-1) != 1), heads transposed (a ``(B, L, H, D)`` buffer), rows padded
  (row stride > D), batch expanded (stride 0);
- sizes: B, H in 0..2, Lq, Lk in {0, 1, 3, 7} (0 everywhere);
- dtypes: fp64, fp32, bf16; float masks in a dtype other than the query's;
- masks: none, key padding with fully masked rows, per-head bool, float with -inf rows,
  causal (also bottom-right with Lq < Lk);
- outputs, weights (per head, or averaged over the heads: ``average_weights``) and the
  gradients of q, k, v (through the weights too).

Reference: softmax(scale q k^T + M) v in fp64, a fully masked row giving zeros.
Tolerances: fp64 1e-9, fp32 2e-5 (+1e-4 relative), bf16 3e-2 (relative norm).
"""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import attnlab.attention.core as core
from attnlab.attention import scaled_dot_product_attention
from attnlab.kernels.native import causal_attention as native

PATHS = ("auto", "fused", "fused_weights", "plain", "causal_kernel", "causal_bmm", "self_kernel", "self_bmm",
         "causal_kernel_weights", "self_kernel_weights")
SELF_PATHS = ("causal_kernel", "causal_bmm", "self_kernel", "self_bmm")  # q, k, v of one shape, no weights
WEIGHTS_SELF_PATHS = ("causal_kernel_weights", "self_kernel_weights")  # q, k, v of one shape, weights


def _self_mask(path: str) -> str:
    """The one mask a self-attention path computes."""
    return "causal" if path.startswith("causal") else "none"
LAYOUTS = {
    "contiguous": lambda x: x.contiguous(),
    "last dim strided": lambda x: x.transpose(-1, -2).contiguous().transpose(-1, -2),
    "heads transposed": lambda x: x.transpose(1, 2).contiguous().transpose(1, 2),
    "rows padded": lambda x: torch.cat([x, torch.zeros_like(x[..., :3])], -1)[..., : x.shape[-1]],
    "batch expanded": lambda x: x[:1].expand_as(x) if x.shape[0] else x,
}
MASKS = ("none", "key padding", "per head", "float", "causal")


def _vector_width() -> int:
    library = native._library()
    return 0 if library is None else library.attnlab_causal_attention_vector_width()


def reference(q, k, v, mask, causal, scale):
    """fp64 softmax attention; fully masked rows give zeros."""
    s = q @ k.transpose(-2, -1) * scale
    lq, lk = q.shape[-2], k.shape[-2]
    if causal:
        s = s.masked_fill(~torch.ones(lq, lk, dtype=torch.bool).tril(lk - lq), float("-inf"))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask.double()
    empty = (s == float("-inf")).all(-1, keepdim=True)  # rows with no allowed key
    w = torch.softmax(s.masked_fill(empty, 0.0), -1).masked_fill(empty, 0.0)  # no NaN, even in backward
    return w @ v, w


def _applies(path: str, dtype, causal_only: bool, d: int, need_weights: bool, unmasked: bool = False) -> bool:
    if path in SELF_PATHS + WEIGHTS_SELF_PATHS and (
            need_weights != (path in WEIGHTS_SELF_PATHS) or not (causal_only if path.startswith("causal") else unmasked)):
        return False
    if "_kernel" in path:
        width = _vector_width()
        return dtype in (torch.float32, torch.bfloat16) and width > 0 and d % width == 0
    if path in ("fused", "fused_weights"):
        return need_weights == (path == "fused_weights")
    return True


@st.composite
def cases(draw):
    path = draw(st.sampled_from(PATHS))
    self_path = path in SELF_PATHS + WEIGHTS_SELF_PATHS
    dtypes = [torch.float32, torch.bfloat16] if "_kernel" in path else [torch.float64, torch.float32, torch.bfloat16]
    dtype = draw(st.sampled_from(dtypes))
    need_weights = {"auto": None, "plain": None, "fused_weights": True}.get(path, path in WEIGHTS_SELF_PATHS)
    need_weights = draw(st.booleans()) if need_weights is None else need_weights
    mask_kind = _self_mask(path) if self_path else draw(st.sampled_from(MASKS))
    b, h = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    lq = draw(st.sampled_from([0, 1, 3, 7]))
    lk = lq if self_path else draw(st.sampled_from([0, 1, 3, 7]))
    if mask_kind == "causal" and lq > lk:
        lq, lk = lk, lq
    d = draw(st.sampled_from([16, 32])) if "_kernel" in path else draw(st.sampled_from([1, 5, 16]))
    dv = d if self_path or path == "fused_weights" else draw(st.sampled_from([d, 3]))
    layouts = [draw(st.sampled_from(list(LAYOUTS))) for _ in range(3)]
    grads = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    average = need_weights and draw(st.booleans())
    return path, dtype, need_weights, mask_kind, (b, h, lq, lk, d, dv), layouts, grads, seed, average


def _mask(kind, b, h, lq, lk, dtype, gen, seed):
    if kind == "key padding":  # some batch rows fully masked
        return torch.rand(b, 1, 1, lk, generator=gen) < torch.tensor([0.7, 0.0])[:b, None, None, None]
    if kind == "per head":
        return torch.rand(b, h, lq, lk, generator=gen) < 0.6
    if kind == "float":  # a float mask in another dtype than the query's, every other row -inf
        other = [t for t in (torch.float64, torch.float32, torch.bfloat16) if t != dtype][seed % 2]
        m = torch.randn(lq, lk, generator=gen).to(other)
        return m.masked_fill((torch.arange(lq) % 2 == 1)[:, None], float("-inf"))
    return None


def _tolerance(dtype):
    return {torch.float64: (1e-9, 1e-9), torch.float32: (2e-5, 1e-4), torch.bfloat16: (3e-2, 3e-2)}[dtype]


def _close(got: Tensor, want: Tensor, dtype, what: str):
    assert got.shape == want.shape, what
    assert torch.isfinite(got).all(), what
    if got.numel() == 0:
        return
    if dtype == torch.bfloat16:  # 8 bits of mantissa: relative to the tensor's size
        err = (got.double() - want).norm() / want.norm().clamp_min(1.0)
        assert err < 3e-2, f"{what}: relative error {err}"
    else:
        atol, rtol = _tolerance(dtype)
        torch.testing.assert_close(got.double(), want, atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")


Tensor = torch.Tensor


def run_case(path, dtype, need_weights, mask_kind, sizes, layouts, grads, seed, average=False):
    b, h, lq, lk, d, dv = sizes
    if not _applies(path, dtype, mask_kind == "causal" and lq == lk, d, need_weights, mask_kind == "none" and lq == lk and d == dv):
        return False
    gen = torch.Generator().manual_seed(seed)
    bases = [torch.randn(b, h, n, w, generator=gen, dtype=torch.float64) for n, w in ((lq, d), (lk, d), (lk, dv))]
    leaves = [x.to(dtype).requires_grad_(grads) for x in bases]
    q, k, v = (LAYOUTS[name](x) for name, x in zip(layouts, leaves))
    mask = _mask(mask_kind, b, h, lq, lk, dtype, gen, seed)
    causal = mask_kind == "causal"
    forced = mock.patch.object(core, "choose_path", lambda *a, **kw: path) if path != "auto" else mock.patch.object(core, "choose_path", core.choose_path)
    with forced:
        out = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal, need_weights=need_weights,
                                           average_weights=average)
    ref_leaves = [x.detach().double().requires_grad_(grads) for x in leaves]
    rq, rk, rv = (LAYOUTS[name](x) for name, x in zip(layouts, ref_leaves))
    ref_out, ref_w = reference(rq, rk, rv, mask, causal, d**-0.5)
    if average:
        ref_w = ref_w.sum(-3) / max(h, 1)  # (B, Lq, Lk): zeros for no heads
    _close(out.output, ref_out, dtype, f"{path} output")
    assert out.output.dtype == dtype
    if need_weights:
        _close(out.weights, ref_w, dtype, f"{path} weights")
    else:
        assert out.weights is None
    if grads:
        g_out = torch.randn(ref_out.shape, generator=gen, dtype=torch.float64)
        g_w = torch.randn(ref_w.shape, generator=gen, dtype=torch.float64) if need_weights else None
        loss = (out.output * g_out.to(dtype)).sum()
        ref_loss = (ref_out * g_out).sum()
        if need_weights:
            loss = loss + (out.weights * g_w.to(dtype)).sum()
            ref_loss = ref_loss + (ref_w * g_w).sum()
        loss.backward()
        ref_loss.backward()
        for name, leaf, ref_leaf in zip("qkv", leaves, ref_leaves):
            _close(leaf.grad, ref_leaf.grad, dtype, f"{path} grad {name}")
    return True


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_every_path_equals_fp64_for_every_layout_and_size(case):
    ran = run_case(*case)
    event(f"{case[0]} {'ran' if ran else 'not applicable'}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("zero", ["B", "H", "Lq", "Lk", "Lq and Lk"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_zero_sizes_give_empty_or_zero_results(path, zero, dtype):
    """B, H, Lq or Lk = 0 on every path: empty in, empty (or zero, for Lk = 0) out, and
    gradients that run — never a crash (the flash + log-sum-exp path died of SIGFPE)."""
    sizes = {"B": 2, "H": 2, "Lq": 3, "Lk": 3}
    for name in zero.split(" and "):
        sizes[name] = 0
    self_path = path in SELF_PATHS + WEIGHTS_SELF_PATHS
    if self_path and sizes["Lq"] != sizes["Lk"]:
        pytest.skip("self-attention has Lq = Lk")
    d = 16
    ran = 0
    for need_weights, average in ((False, False), (True, False), (True, True)):
        for mask_kind in (_self_mask(path),) if self_path else ("none", "causal", "key padding", "float"):
            if mask_kind == "causal" and sizes["Lq"] > sizes["Lk"]:
                continue
            ran += bool(run_case(path, dtype, need_weights, mask_kind,
                                 (sizes["B"], sizes["H"], sizes["Lq"], sizes["Lk"], d, d), ["contiguous"] * 3, True, 0,
                                 average))
    assert ran or ("_kernel" in path and dtype != torch.float32)


@pytest.mark.parametrize("path", PATHS[1:])
def test_last_dim_strided_inputs(path):
    """The case that read the wrong memory (max error 3.3; 1e36 with all three strided)."""
    for layouts in (["contiguous", "last dim strided", "contiguous"], ["last dim strided"] * 3):
        for average in (False, True):
            run_case(path, torch.float32, path in ("fused_weights", "plain") + WEIGHTS_SELF_PATHS,
                     "causal" if path.startswith("causal") else "none", (2, 3, 16, 16, 16, 16), layouts, True, 1, average)


@pytest.mark.parametrize(
    "dtype,causal,need_weights,grads",
    [(torch.float32, True, False, True), (torch.float32, False, True, True), (torch.float32, False, False, True),
     (torch.bfloat16, True, False, True), (torch.bfloat16, False, True, False), (torch.bfloat16, False, False, True)],
    ids=["C kernel", "flash + lse", "C kernel unmasked", "causal_bmm", "bf16 weights", "self_bmm"],
)
def test_same_input_gives_identical_bits_on_every_call(dtype, causal, need_weights, grads):
    """The path is a function of the inputs only: calls 1..5 of one input agree bit for bit
    (outputs, weights and gradients)."""
    g = torch.Generator().manual_seed(2)
    base = [torch.randn(2, 4, 64, 32, generator=g).to(dtype) for _ in range(3)]
    results = []
    for _ in range(5):
        leaves = [t.clone().requires_grad_(grads) for t in base]
        out = scaled_dot_product_attention(*leaves, causal=causal, need_weights=need_weights)
        got = [out.output.detach()] + ([out.weights.detach()] if need_weights else [])
        if grads:
            out.output.sum().backward()
            got += [t.grad for t in leaves]
        results.append(got)
    for later in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(later, results[0]))


def test_bf16_weights_backward_through_the_log_sum_exp():
    """The example that found the weights' backward of ``fused_weights`` computed in bf16:
    grad q 0.08 off fp64 (plain: 0.011); the scores and their softmax backward now run in
    fp32 at least."""
    run_case("fused_weights", torch.bfloat16, True, "key padding", (2, 2, 3, 3, 1, 1), ["contiguous"] * 3, True, 589)


@pytest.mark.parametrize("path", ["fused_weights", "plain", "auto"])
def test_averaged_weights_with_a_mask_per_head(path):
    """Weights averaged over the heads, each head with its own mask: the head-by-head average
    of the fused paths reads each head's mask (and its backward each head's weights)."""
    for dtype in (torch.float32, torch.float64):
        assert run_case(path, dtype, True, "per head", (2, 3, 7, 7, 16, 16), ["contiguous"] * 3, True, 5, True)
