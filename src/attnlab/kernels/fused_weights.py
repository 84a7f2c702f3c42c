"""Attention weights computed beside a fused kernel, reusing its log-sum-exp.

A fused (flash) kernel never materialises the weights, but it returns the per-query
normalizer  lse_i = log sum_j exp(s_ij)  with  s_ij = scale * q_i . k_j + M_ij.
The weights then cost one matrix product and one exponential, with no second
max/sum pass of a softmax:

    a_ij = exp(s_ij - lse_i)

Backward is the softmax backward, ds = a * (g - sum_j g a), then dq = ds k and
dk = ds^T q; it only runs when the weights themselves feed the loss.

Used by :func:`attnlab.attention.core.scaled_dot_product_attention` when
:func:`attnlab.kernels.backend.choose_path` says so: fp32 on the CPU, with PyTorch's flash
kernel (``"fused_weights"``), or with attnlab's C kernel for causal or unmasked
self-attention (``"causal_kernel_weights"``, ``"self_kernel_weights"``:
:func:`kernel_attention_with_weights`), whose forward and backward are faster here.

Shapes: q ``(B, H, Lq, D)``, k ``(B, H, Lk, D)``, lse ``(B, H, Lq)``, weights ``(B, H, Lq, Lk)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.kernels.causal_kernel import causal_attention_kernel, kernel_backward, kernel_forward
from attnlab.kernels.empty import empty_attention, is_empty
from attnlab.kernels.native import causal_attention as native

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


class _AveragedWeightsFromLogSumExp(torch.autograd.Function):
    """The weights averaged over the heads, ``(B, Lq, Lk) = (1/H) sum_h a_h``, one head at a
    time: no ``(B, H, Lq, Lk)`` tensor is built or saved (its allocation alone -- fresh pages
    -- costs as much as the product); the backward recomputes each head's ``a_h``."""

    @staticmethod
    def forward(ctx, q_scaled: Tensor, key: Tensor, lse: Tensor, float_mask: Tensor | None) -> Tensor:
        b, heads, lq, lk = q_scaled.shape[0], q_scaled.shape[1], q_scaled.shape[2], key.shape[2]
        lse = torch.where(lse == float("-inf"), float("inf"), lse)
        mask = None if float_mask is None else float_mask.expand(b, heads, lq, lk)
        total, head = q_scaled.new_zeros(b, lq, lk), q_scaled.new_empty(b, lq, lk)
        for h in range(heads):
            total += _head_weights(q_scaled, key, lse, mask, h, out=head)
        ctx.save_for_backward(q_scaled, key, lse, float_mask)
        return total.div_(heads)

    @staticmethod
    def backward(ctx, grad_weights: Tensor):
        return *_averaged_weights_grads(*ctx.saved_tensors, grad_weights), None, None


def _averaged_weights_grads(q_scaled: Tensor, key: Tensor, lse: Tensor, float_mask: Tensor | None,
                            grad_weights: Tensor) -> tuple[Tensor, Tensor]:
    """The gradients of ``q_scaled`` and ``key`` from those of the head-averaged weights
    ``(B, Lq, Lk)``, each head's ``a_h`` recomputed (``lse``: +inf on rows with no allowed key)."""
    heads = q_scaled.shape[1]
    mask = None if float_mask is None else float_mask.expand(*q_scaled.shape[:2], q_scaled.shape[2], key.shape[2])
    grad = grad_weights / heads  # (B, Lq, Lk): each head's share
    grad_q, grad_k, head = torch.empty_like(q_scaled), torch.empty_like(key), grad.new_empty(grad.shape)
    for h in range(heads):
        weights = _head_weights(q_scaled, key, lse, mask, h, out=head)  # (B, Lq, Lk)
        grad_scores = weights * (grad - (grad * weights).sum(-1, keepdim=True))
        torch.matmul(grad_scores, key[:, h], out=grad_q[:, h])
        torch.matmul(grad_scores.transpose(-2, -1), q_scaled[:, h], out=grad_k[:, h])
    return grad_q, grad_k


class _KernelWithMeanWeights(torch.autograd.Function):
    """The C kernel's output and the weights averaged over the heads from one forward (T <=
    ``native.MAX_LENGTH``: each head's P, in cache, is added into a ``(B, T, T)`` block); the
    backward adds the weights' part (each head recomputed) only when they feed the loss."""

    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, value: Tensor, scale: float, causal: bool) -> tuple[Tensor, Tensor]:
        b, _, t, _ = query.shape
        weights = query.new_empty(b, t, t)  # (B, T, T)
        out, _ = kernel_forward(ctx, query, key, value, scale, causal, mean_weights=weights)  # (B, H, T, D)
        ctx.set_materialize_grads(False)
        return out, weights

    @staticmethod
    def backward(ctx, grad_out: Tensor | None, grad_weights: Tensor | None):
        query, key, _, out, lse, _ = ctx.saved_tensors
        grad_q, grad_k, grad_v = kernel_backward(ctx, torch.zeros_like(out) if grad_out is None else grad_out)
        if grad_weights is not None:
            t = query.shape[2]
            mask = torch.full((t, t), float("-inf"), device=query.device).triu_(1) if ctx.causal else None
            with torch.autocast(query.device.type, enabled=False):
                grad_q_scaled, grad_k_weights = _averaged_weights_grads(query * ctx.scale, key, lse, mask, grad_weights)
            grad_q, grad_k = grad_q + ctx.scale * grad_q_scaled, grad_k + grad_k_weights
        return grad_q, grad_k, grad_v, None, None


def _head_weights(q_scaled: Tensor, key: Tensor, lse: Tensor, mask: Tensor | None, h: int, out: Tensor) -> Tensor:
    """Head h's ``exp(q_h k_h^T + M_h - lse_h)`` written into ``out (B, Lq, Lk)`` (``lse``:
    +inf on rows with no allowed key)."""
    scores = torch.matmul(q_scaled[:, h], key[:, h].transpose(-2, -1), out=out)
    if mask is not None:
        scores += mask[:, h]
    return scores.sub_(lse[:, h].unsqueeze(-1)).exp_()


def weights_from_lse(query: Tensor, key: Tensor, lse: Tensor, float_mask: Tensor | None, scale: float,
                     average: bool) -> Tensor:
    """``exp(scale q k^T + M - lse)`` per head ``(B, H, Lq, Lk)``, or averaged over the heads
    ``(B, Lq, Lk)`` (``average``), in fp32 at least, returned in the query's dtype."""
    # the scores, their exponential and the softmax backward in fp32 at least, as a softmax
    # of bf16 inputs does: in bf16 the backward's  g - sum_j g a  cancels (measured 0.08
    # relative error in grad q against fp64, where the plain path has 0.011)
    compute = torch.promote_types(query.dtype, torch.float32)
    mask = None if float_mask is None else float_mask.to(compute)
    function = _AveragedWeightsFromLogSumExp if average else _WeightsFromLogSumExp
    with torch.autocast(query.device.type, enabled=False):  # autocast would take the products back to bf16
        weights = function.apply(query.to(compute) * scale, key.to(compute), lse.to(compute), mask)
    return weights.to(query.dtype)


def head_mean(weights: Tensor) -> Tensor:
    """``(..., H, Lq, Lk) -> (..., Lq, Lk)``: the mean over the heads (zeros when H = 0)."""
    return weights.sum(dim=-3) / max(weights.shape[-3], 1)


def flash_available() -> bool:
    """Whether this PyTorch exposes the CPU flash kernel with its log-sum-exp."""
    return _FLASH_CPU is not None


def fused_attention_with_weights(
    query: Tensor, key: Tensor, value: Tensor, float_mask: Tensor | None, scale: float, average: bool = False
) -> tuple[Tensor, Tensor]:
    """Output from the flash kernel and weights from its log-sum-exp: ``(out, weights)``,
    the weights averaged over the heads with ``average``.

    Any layout: the kernel reads rows as contiguous, so a tensor whose last dimension is
    strided is copied first; empty sizes (B, H, Lq or Lk = 0) never reach it."""
    if is_empty(query, key):
        out, weights = empty_attention(query, key, value)
        return out, head_mean(weights) if average else weights
    query, key, value = (t if t.stride(-1) == 1 else t.contiguous() for t in (query, key, value))
    out, lse = _FLASH_CPU(query, key, value, 0.0, False, attn_mask=float_mask, scale=scale)
    return out, weights_from_lse(query, key, lse, float_mask, scale, average)


def kernel_attention_with_weights(
    query: Tensor, key: Tensor, value: Tensor, scale: float, causal: bool, average: bool = False
) -> tuple[Tensor, Tensor]:
    """Output from attnlab's C self-attention kernel (causal or unmasked; ``(B, H, T, D)``
    inputs it accepts) and weights from its log-sum-exp: ``(out, weights)``, the weights
    averaged over the heads with ``average`` -- written by the kernel itself up to
    ``native.MAX_LENGTH`` positions (:class:`_KernelWithMeanWeights`: no second product)."""
    t = query.shape[-2]
    if average and t <= native.MAX_LENGTH and not is_empty(query, key):
        dtype = query.dtype  # bf16 computed in fp32, as causal_attention_kernel does
        inputs = (x.float() if x.stride(-1) == 1 else x.float().contiguous() for x in (query, key, value))
        out, weights = _KernelWithMeanWeights.apply(*inputs, scale, causal)
        return out.to(dtype), weights.to(dtype)
    out, lse = causal_attention_kernel(query, key, value, scale, causal=causal, with_lse=True)
    float_mask = torch.full((t, t), float("-inf"), device=query.device).triu_(1) if causal else None  # (T, T)
    return out, weights_from_lse(query, key, lse, float_mask, scale, average)
