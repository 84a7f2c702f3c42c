"""causal_bmm: the bf16 causal training path against an fp64 reference and the general path."""

from __future__ import annotations

import pytest
import torch

from attnlab.attention.core import scaled_dot_product_attention
from attnlab.kernels.causal_bmm import causal_attention_bmm


def _reference(q, k, v, scale):
    """fp64: softmax(scale q k^T with the future masked) v."""
    length = q.shape[-2]
    scores = scale * q @ k.transpose(-2, -1)
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(-1) @ v


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_output_and_gradients_match_fp64(dtype, tol):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 17, 8, dtype=torch.float64) for _ in range(3))
    grad = torch.randn(2, 3, 17, 8, dtype=torch.float64)
    inputs = [t.clone().to(dtype).requires_grad_() for t in (q, k, v)]
    out = causal_attention_bmm(*inputs, scale=0.3)
    out.backward(grad.to(dtype))
    ref_inputs = [t.clone().requires_grad_() for t in (q, k, v)]
    ref = _reference(*ref_inputs, scale=0.3)
    ref.backward(grad)
    assert out.shape == ref.shape and out.dtype == dtype
    # relative to each tensor's size: bf16 keeps 8 bits of mantissa
    assert (out.double() - ref).norm() / ref.norm() < tol
    for mine, theirs in zip(inputs, ref_inputs):
        assert (mine.grad.double() - theirs.grad).norm() / theirs.grad.norm() < tol


def test_bf16_training_under_autocast_takes_this_path_and_agrees_with_the_general_one():
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 4, 32, 16, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = scaled_dot_product_attention(q, k, v, causal=True).output
    assert out.grad_fn is not None and "CausalBmmAttention" in type(out.grad_fn).__name__
    out.sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the general plain path: a bool mask, same function
        general = scaled_dot_product_attention(q, k, v, mask=torch.ones(32, 32, dtype=torch.bool).tril()).output
    general.sum().backward()
    assert (out.double() - general.double()).norm() / general.double().norm() < 2e-2
    for mine, t in zip(grads, (q, k, v)):
        assert (mine.double() - t.grad.double()).norm() / t.grad.double().norm() < 3e-2
