"""Attention weights computed beside a fused kernel, reusing its log-sum-exp.

A fused (flash) kernel never materialises the weights, but it returns the per-query
normalizer  lse_i = log sum_j exp(s_ij)  with  s_ij = scale * q_i . k_j + M_ij.
The weights then cost one matrix product and one exponential, with no second
max/sum pass of a softmax:

    a_ij = exp(s_ij - lse_i)

Backward is the softmax backward, ds = a * (g - sum_j g a), then dq = ds k and
dk = ds^T q; it only runs when the weights themselves feed the loss.

Used by :func:`attnlab.attention.core.scaled_dot_product_attention` when
:func:`attnlab.kernels.backend.choose_path` says so (fp32 on the CPU, where PyTorch
exposes the flash kernel's log-sum-exp).

Shapes: q ``(B, H, Lq, D)``, k ``(B, H, Lk, D)``, lse ``(B, H, Lq)``, weights ``(B, H, Lq, Lk)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.kernels.empty import empty_attention, is_empty

_FLASH_CPU = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


class _WeightsFromLogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q_scaled: Tensor, key: Tensor, lse: Tensor, float_mask: Tensor | None) -> Tensor:
        scores = torch.matmul(q_scaled, key.transpose(-2, -1))  # (B, H, Lq, Lk)
        if float_mask is not None:
            scores += float_mask
        # A query with no allowed key has lse = -inf; +inf there makes its weights exp(-inf) = 0.
        lse = torch.where(lse == float("-inf"), float("inf"), lse)
        weights = scores.sub_(lse.unsqueeze(-1)).exp_()
        ctx.save_for_backward(q_scaled, key, weights)
        return weights

    @staticmethod
    def backward(ctx, grad_weights: Tensor):
        q_scaled, key, weights = ctx.saved_tensors
        grad_scores = weights * (grad_weights - (grad_weights * weights).sum(-1, keepdim=True))
        grad_q = torch.matmul(grad_scores, key)  # (B, H, Lq, D)
        grad_k = torch.matmul(grad_scores.transpose(-2, -1), q_scaled)  # (B, H, Lk, D)
        return grad_q, grad_k, None, None


def flash_available() -> bool:
    """Whether this PyTorch exposes the CPU flash kernel with its log-sum-exp."""
    return _FLASH_CPU is not None


def fused_attention_with_weights(
    query: Tensor, key: Tensor, value: Tensor, float_mask: Tensor | None, scale: float
) -> tuple[Tensor, Tensor]:
    """Output from the flash kernel and weights from its log-sum-exp: ``(out, weights)``.

    Any layout: the kernel reads rows as contiguous, so a tensor whose last dimension is
    strided is copied first; empty sizes (B, H, Lq or Lk = 0) never reach it."""
    if is_empty(query, key):
        return empty_attention(query, key, value)
    query, key, value = (t if t.stride(-1) == 1 else t.contiguous() for t in (query, key, value))
    out, lse = _FLASH_CPU(query, key, value, 0.0, False, attn_mask=float_mask, scale=scale)
    # the scores, their exponential and the softmax backward in fp32 at least, as a softmax
    # of bf16 inputs does: in bf16 the backward's  g - sum_j g a  cancels (measured 0.08
    # relative error in grad q against fp64, where the plain path has 0.011)
    compute = torch.promote_types(query.dtype, torch.float32)
    mask = None if float_mask is None else float_mask.to(compute)
    weights = _WeightsFromLogSumExp.apply(query.to(compute) * scale, key.to(compute), lse.to(compute), mask)
    return out, weights.to(query.dtype)
