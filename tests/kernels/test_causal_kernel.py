"""causal_kernel: attnlab's C self-attention (fp32, CPU; causal or unmasked) against an fp64 reference,
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


def _reference(q, k, v, scale, causal=True):
    """fp64 softmax(scale q k^T, future masked when causal) v and the log-sum-exp of each row."""
    t = q.shape[-2]
    scores = scale * q @ k.transpose(-2, -1)
    if causal:
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v, scores.logsumexp(-1)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "unmasked"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "shape",
    [(2, 3, 37, 32), (1, 2, 5, 16), (2, 4, 128, 64), (2, 2, 200, 48), (1, 1, 1, 16), (1, 2, 513, 32),
     (1, 1, 700, 80)],
    ids=["T37", "T5-shorter-than-a-vector", "T128-probabilities-kept", "T200-recomputed", "T1",
         "T513-blocked", "T700-blocked-three-chunks-d80"],
)
def test_forward_and_backward_match_fp64(shape, threads, causal):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    q, k, v = _packed_heads(*shape, generator=g)
    scale = 0.7 / shape[-1] ** 0.5
    grad = torch.randn(shape, generator=g)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out, lse, probabilities = native.forward(q, k, v, scale, for_backward=True, causal=causal)
        grads = native.backward(q, k, v, out, lse, probabilities, grad, scale, causal=causal)
    finally:
        torch.set_num_threads(previous)
    kept = shape[2] <= native.MAX_LENGTH and native._padded_length(shape[2]) <= 2 * shape[3]
    assert (probabilities is not None) == kept
    ref_inputs = [x.double().requires_grad_() for x in (q, k, v)]
    ref, ref_lse = _reference(*ref_inputs, scale, causal)
    ref.backward(grad.double())
    torch.testing.assert_close(out.double(), ref, **TOL)
    torch.testing.assert_close(lse.double(), ref_lse, **TOL)
    for mine, theirs in zip(grads, ref_inputs):
        torch.testing.assert_close(mine.double(), theirs.grad, **TOL)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "unmasked"])
@pytest.mark.parametrize("t", [100, 600], ids=["T100-whole", "T600-blocked"])
def test_bf16_inputs_are_as_accurate_as_the_plain_bf16_path(t, causal):
    """bf16 q, k, v go through the fp32 kernels and come back rounded once to bf16: the
    output's and every gradient's error against fp64 (max abs, relative to the reference's
    largest entry) is no larger than that of the plain bf16 path (scores, softmax and sum in
    bf16, as ``attend`` computes them), and below 1e-2."""
    g = torch.Generator().manual_seed(6)
    q, k, v = (x.bfloat16() for x in _packed_heads(1, 2, t, 32, g))
    grad = torch.randn(1, 2, t, 32, generator=g).bfloat16()
    scale = 32**-0.5

    def run(attention, dtype):
        inputs = [x.to(dtype).clone().requires_grad_() for x in (q, k, v)]
        out = attention(*inputs)
        out.backward(grad.to(dtype))
        return [out.detach(), *(x.grad for x in inputs)]

    def plain(q_, k_, v_):
        scores = (q_ * scale) @ k_.transpose(-2, -1)
        if causal:
            scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        return scores.softmax(-1) @ v_

    reference = run(lambda *x: _reference(*x, scale, causal)[0], torch.float64)
    kernel = run(lambda *x: causal_attention_kernel(*x, scale, causal=causal), torch.bfloat16)
    bf16_plain = run(plain, torch.bfloat16)
    for name, ref, mine, theirs in zip(("out", "dq", "dk", "dv"), reference, kernel, bf16_plain):
        assert mine.dtype == torch.bfloat16
        mine_error = ((mine.double() - ref).abs().max() / ref.abs().max()).item()
        plain_error = ((theirs.double() - ref).abs().max() / ref.abs().max()).item()
        assert mine_error <= min(plain_error, 1e-2), (name, mine_error, plain_error)


@pytest.mark.parametrize("average", [False, True], ids=["per-head", "averaged"])
def test_weights_past_the_whole_kernel_match_fp64(average):
    """T = 520 (the blocked kernel, weights from its log-sum-exp): output, weights and the
    gradients through both against fp64; fp32 tolerance as above."""
    g = torch.Generator().manual_seed(7)
    q, k, v = _packed_heads(1, 2, 520, 16, g)
    inputs = [x.clone().requires_grad_() for x in (q, k, v)]
    out, weights = scaled_dot_product_attention(*inputs, causal=True, need_weights=True, average_weights=average)
    ref_inputs = [x.double().requires_grad_() for x in (q, k, v)]
    scores = ref_inputs[0] @ ref_inputs[1].transpose(-2, -1) / 4
    ref_weights = scores.masked_fill(torch.ones(520, 520, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    ref_out = ref_weights @ ref_inputs[2]
    ref_weights = ref_weights.mean(1) if average else ref_weights
    grad_out, grad_weights = torch.randn(out.shape, generator=g), torch.randn(weights.shape, generator=g)
    (out * grad_out).sum().add((weights * grad_weights).sum()).backward()
    (ref_out * grad_out).sum().add((ref_weights * grad_weights).sum()).backward()
    torch.testing.assert_close(out.double(), ref_out, **TOL)
    torch.testing.assert_close(weights.double(), ref_weights, **TOL)
    for mine, theirs in zip(inputs, ref_inputs):
        torch.testing.assert_close(mine.grad.double(), theirs.grad, **TOL)


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
    assert choose_path(q, k, v, need_weights=True, dropout_p=0.0, causal_only=True) == "causal_kernel_weights"
    assert choose_path(q, k, v, need_weights=True, dropout_p=0.1, causal_only=True) == "plain"
    assert choose_path(*(x.bfloat16() for x in (q, k, v)), need_weights=False, dropout_p=0.0, causal_only=True) == "fused"
    narrow = tuple(x[..., :8] for x in (q, k, v))  # head width 8: not a multiple of the vector width
    assert choose_path(*narrow, need_weights=False, dropout_p=0.0, causal_only=True) == "fused"
    long = torch.randn(1, 1, native.MAX_LENGTH + 1, 32)  # the blocked kernel, in fp32 and bf16
    assert choose_path(long, long, long, need_weights=False, dropout_p=0.0, causal_only=True) == "causal_kernel"
    long = long.bfloat16()
    assert choose_path(long, long, long, need_weights=False, dropout_p=0.0, causal_only=True) == "causal_kernel"
    assert choose_path(long, long, long, need_weights=False, dropout_p=0.0, unmasked=True) == "self_kernel"
    strided = torch.randn(2, 4, 64, 64)[..., ::2]  # elements of a row not contiguous
    assert not native.applies(strided, strided, strided)
    monkeypatch.setenv("ATTNLAB_NATIVE", "0")
    assert choose_path(q, k, v, need_weights=False, dropout_p=0.0, causal_only=True) == "fused"
    assert choose_path(q, k, v, need_weights=True, dropout_p=0.0, causal_only=True) == "fused_weights"


def test_chosen_for_unmasked_self_attention_in_fp32_and_bf16_training():
    q, k, v = _packed_heads(2, 4, 65, 32, torch.Generator().manual_seed(3))
    assert choose_path(q, k, v, need_weights=False, dropout_p=0.0, unmasked=True) == "self_kernel"
    assert choose_path(q, k, v, need_weights=True, dropout_p=0.0, unmasked=True) == "self_kernel_weights"
    assert choose_path(q, k, v, need_weights=False, dropout_p=0.1, unmasked=True) == "fused"
    bf16 = [x.bfloat16().requires_grad_() for x in (q, k, v)]
    assert choose_path(*bf16, need_weights=False, dropout_p=0.0, unmasked=True) == "self_bmm"
    with torch.no_grad():
        assert choose_path(*bf16, need_weights=False, dropout_p=0.0, unmasked=True) == "fused"


def test_scaled_dot_product_attention_routes_unmasked_self_attention_through_it(monkeypatch):
    """No mask, q, k, v of one shape: the kernel; a mask or keys of another length: not."""
    q, k, v = _packed_heads(1, 2, 40, 32, torch.Generator().manual_seed(4))
    calls = []
    real = native.forward
    monkeypatch.setattr(native, "forward", lambda *a, **kw: calls.append(kw["causal"]) or real(*a, **kw))
    out = scaled_dot_product_attention(q, k, v).output
    assert calls == [False]
    torch.testing.assert_close(out, _reference(q.double(), k.double(), v.double(), 32**-0.5, causal=False)[0].float(), **TOL)
    scaled_dot_product_attention(q, k, v, mask=torch.ones(40, 40, dtype=torch.bool))
    scaled_dot_product_attention(q, k[:, :, :30], v[:, :, :30])
    assert calls == [False]


def test_scaled_dot_product_attention_routes_causal_calls_through_it(monkeypatch):
    q, k, v = (x.clone().requires_grad_() for x in _packed_heads(1, 2, 40, 32, torch.Generator().manual_seed(4)))
    calls = []
    real = native.forward
    monkeypatch.setattr(native, "forward", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    out = scaled_dot_product_attention(q, k, v, causal=True).output
    assert calls == [1]
    torch.testing.assert_close(out, _reference(q.double(), k.double(), v.double(), 32**-0.5)[0].float(), **TOL)


def _gpt():
    from attnlab.models.gpt import GPT, gpt_config

    model = GPT(gpt_config("tiny", d_model=64, num_heads=2, dropout=0.0, attention_dropout=0.0))
    ids = torch.randint(0, model.config.vocab_size, (3, 24))
    return model, lambda: model(ids, labels=ids).loss


def _bert():
    from attnlab.models.bert import BERT, bert_config

    model = BERT(bert_config("tiny", hidden_size=64, num_heads=2, head="mlm", dropout=0.0, attention_dropout=0.0))
    ids = torch.randint(5, model.config.vocab_size, (3, 24))
    return model, lambda: model(ids, mlm_labels=ids).loss


def _vit():
    from attnlab.models.vit import ViT, vit_config

    model = ViT(vit_config("digits", hidden_size=64, num_heads=2, dropout=0.0))
    pixels, labels = torch.randn(3, 1, 8, 8), torch.tensor([0, 3, 9])
    return model, lambda: model(pixels, labels=labels).loss


@pytest.mark.parametrize("make", [_gpt, _bert, _vit], ids=["GPT causal", "BERT unmasked", "ViT unmasked"])
def test_training_step_through_the_kernel_equals_the_flash_path(monkeypatch, make):
    """The same fp32 model, loss and every gradient, with the kernel and with PyTorch's flash kernel."""
    torch.manual_seed(5)
    model, loss_of = make()

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        loss = loss_of()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    calls = []
    real = native.backward
    monkeypatch.setattr(native, "backward", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    kernel_loss, kernel_grads = loss_and_grads()
    assert len(calls) == len(model.layers if hasattr(model, "layers") else model.blocks)
    monkeypatch.setattr(native, "applies", lambda *a: False)
    flash_loss, flash_grads = loss_and_grads()
    torch.testing.assert_close(kernel_loss, flash_loss, **TOL)
    assert kernel_grads.keys() == flash_grads.keys()
    for name, grad in flash_grads.items():
        torch.testing.assert_close(kernel_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
