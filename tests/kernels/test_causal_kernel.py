"""causal_kernel: attnlab's C causal self-attention (fp32, CPU) against an fp64 reference,
PyTorch's flash kernel and the general path; when it is chosen; the GPT step through it.

Tolerance: fp32 rounding, atol 1e-5 on unit-variance inputs (observed <= 3e-6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlab.attention.core import scaled_dot_product_attention
from attnlab.kernels.backend import choose_path
from attnlab.kernels.causal_kernel import causal_attention_kernel
from attnlab.kernels.native import causal_attention as native

pytestmark = pytest.mark.skipif(native._library() is None, reason="the C kernel needs a C compiler")
TOL = dict(atol=1e-5, rtol=1e-5)


def _packed_heads(b: int, h: int, t: int, d: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """q, k, v as the per-head (B, H, T, D) views of one packed projection (B, T, 3 H D),
    the layout MultiHeadAttention hands over: rows contiguous, heads and rows strided."""
    packed = torch.randn(b, t, 3 * h * d, generator=generator)
    return tuple(x.view(b, t, h, d).transpose(1, 2) for x in packed.split(h * d, dim=-1))


def _reference(q, k, v, scale):
    """fp64 softmax(scale q k^T, future masked) v and the log-sum-exp of each row."""
    t = q.shape[-2]
    scores = (scale * q @ k.transpose(-2, -1)).masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v, scores.logsumexp(-1)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "shape",
    [(2, 3, 37, 32), (1, 2, 5, 16), (2, 4, 128, 64), (2, 2, 200, 48), (1, 1, 1, 16)],
    ids=["T37", "T5-shorter-than-a-vector", "T128-probabilities-kept", "T200-recomputed", "T1"],
)
def test_forward_and_backward_match_fp64(shape, threads):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    q, k, v = _packed_heads(*shape, generator=g)
    scale = 0.7 / shape[-1] ** 0.5
    grad = torch.randn(shape, generator=g)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out, lse, probabilities = native.forward(q, k, v, scale, for_backward=True)
        grads = native.backward(q, k, v, out, lse, probabilities, grad, scale)
    finally:
        torch.set_num_threads(previous)
    assert (probabilities is not None) == (native._padded_length(shape[2]) <= 2 * shape[3])
    ref_inputs = [x.double().requires_grad_() for x in (q, k, v)]
    ref, ref_lse = _reference(*ref_inputs, scale)
    ref.backward(grad.double())
    torch.testing.assert_close(out.double(), ref, **TOL)
    torch.testing.assert_close(lse.double(), ref_lse, **TOL)
    for mine, theirs in zip(grads, ref_inputs):
        torch.testing.assert_close(mine.double(), theirs.grad, **TOL)


def test_outputs_merge_heads_without_a_copy():
    """The output (and each gradient) is a (B, H, T, D) view of a (B, T, H, D) tensor,
    so merging the heads back is a view."""
    q, k, v = _packed_heads(2, 4, 16, 32, torch.Generator().manual_seed(1))
    out, _, _ = native.forward(q, k, v, 0.2)
    merged = out.transpose(1, 2).reshape(2, 16, 128)
    assert merged.data_ptr() == out.data_ptr() and merged.is_contiguous()


def test_autograd_function_matches_flash_and_saves_nothing_without_grad():
    g = torch.Generator().manual_seed(2)
    q, k, v = (x.clone().requires_grad_() for x in _packed_heads(2, 4, 64, 32, g))
    out = causal_attention_kernel(q, k, v, 32**-0.5)
    grad = torch.randn(out.shape, generator=g)
    out.backward(grad)
    flash_inputs = [x.detach().clone().requires_grad_() for x in (q, k, v)]
    flash = F.scaled_dot_product_attention(*flash_inputs, is_causal=True)
    flash.backward(grad)
    torch.testing.assert_close(out, flash, **TOL)
    for mine, theirs in zip((q, k, v), flash_inputs):
        torch.testing.assert_close(mine.grad, theirs.grad, **TOL)
    with torch.no_grad():
        inference = causal_attention_kernel(q, k, v, 32**-0.5)
    assert inference.grad_fn is None
    torch.testing.assert_close(inference, out.detach(), atol=0, rtol=0)


def test_chosen_for_fp32_causal_self_attention_only(monkeypatch):
    q, k, v = _packed_heads(2, 4, 64, 32, torch.Generator().manual_seed(3))
    assert choose_path(q, k, v, need_weights=False, dropout_p=0.0, causal_only=True) == "causal_kernel"
    assert choose_path(q, k, v, need_weights=False, dropout_p=0.0) == "fused"  # not causal
    assert choose_path(q, k, v, need_weights=False, dropout_p=0.1, causal_only=True) == "fused"
    assert choose_path(q, k, v, need_weights=True, dropout_p=0.0, causal_only=True) == "fused_weights"
    assert choose_path(*(x.bfloat16() for x in (q, k, v)), need_weights=False, dropout_p=0.0, causal_only=True) == "fused"
    narrow = tuple(x[..., :8] for x in (q, k, v))  # head width 8: not a multiple of the vector width
    assert choose_path(*narrow, need_weights=False, dropout_p=0.0, causal_only=True) == "fused"
    long = torch.randn(1, 1, native.MAX_LENGTH + 1, 32)
    assert choose_path(long, long, long, need_weights=False, dropout_p=0.0, causal_only=True) == "fused"
    strided = torch.randn(2, 4, 64, 64)[..., ::2]  # elements of a row not contiguous
    assert not native.applies(strided, strided, strided)
    monkeypatch.setenv("ATTNLAB_NATIVE", "0")
    assert choose_path(q, k, v, need_weights=False, dropout_p=0.0, causal_only=True) == "fused"


def test_scaled_dot_product_attention_routes_causal_calls_through_it(monkeypatch):
    q, k, v = (x.clone().requires_grad_() for x in _packed_heads(1, 2, 40, 32, torch.Generator().manual_seed(4)))
    calls = []
    real = native.forward
    monkeypatch.setattr(native, "forward", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    out = scaled_dot_product_attention(q, k, v, causal=True).output
    assert calls == [1]
    torch.testing.assert_close(out, _reference(q.double(), k.double(), v.double(), 32**-0.5)[0].float(), **TOL)


def test_gpt_training_step_through_the_kernel_equals_the_flash_path(monkeypatch):
    """The same fp32 GPT, loss and every gradient, with the kernel and with PyTorch's flash kernel."""
    from attnlab.models.gpt import GPT, gpt_config

    torch.manual_seed(5)
    model = GPT(gpt_config("tiny", d_model=64, num_heads=2, dropout=0.0, attention_dropout=0.0))
    ids = torch.randint(0, model.config.vocab_size, (3, 24))

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        loss = model(ids, labels=ids).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    calls = []
    real = native.backward
    monkeypatch.setattr(native, "backward", lambda *a: calls.append(1) or real(*a))
    kernel_loss, kernel_grads = loss_and_grads()
    assert len(calls) == model.config.num_layers
    monkeypatch.setattr(native, "applies", lambda *a: False)
    flash_loss, flash_grads = loss_and_grads()
    torch.testing.assert_close(kernel_loss, flash_loss, **TOL)
    for name, grad in flash_grads.items():
        torch.testing.assert_close(kernel_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
