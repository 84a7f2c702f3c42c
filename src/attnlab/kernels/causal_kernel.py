"""Self-attention on the CPU with attnlab's C kernels (forward and backward), causal or
unmasked (every query sees every key: BERT's and ViT's unpadded batches), computed in fp32
(bf16 inputs are converted: O(T D) against the kernel's O(T^2 D), and as accurate as fp32).

    S = scale * Q K^T + M        M_ij = -inf for j > i when causal, M = 0 otherwise
    O = softmax(S) V             P = softmax(S) or the log-sum-exp of S's rows kept for the backward
    backward:  (P = exp(S - lse)), dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),
               dQ = scale * dS K,  dK = scale * dS^T Q,  dV = P^T dO

:mod:`attnlab.kernels.native.causal_attention` runs each (batch, head) pair's products out of a
per-thread workspace in cache and skips the masked half when causal (up to T = 512 the whole
T x T scores, past it FlashAttention-2's query blocks x key chunks with an online softmax);
it reads the per-head views of the packed q/k/v projection in place and writes the output
heads already merged. Its speed against PyTorch's flash kernel is the kernel table and the
long-T table of ``benchmarks/attention.py`` (``docs/benchmarks.md``, "Attention core").

Used by :func:`attnlab.attention.core.scaled_dot_product_attention` when
:func:`attnlab.kernels.backend.choose_path` says ``"causal_kernel"`` or ``"self_kernel"``.
Shapes: q, k, v ``(B, H, T, D)``, output ``(B, H, T, D)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.kernels.empty import empty_attention, is_empty
from attnlab.kernels.native import causal_attention as native


def kernel_forward(ctx, query: Tensor, key: Tensor, value: Tensor, scale: float, causal: bool,
                   mean_weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The kernel's forward inside an autograd Function's: ``(out (B, H, T, D), lse (B, H, T))``,
    what :func:`kernel_backward` needs saved on ``ctx`` when an input needs a gradient."""
    needs_grad = any(ctx.needs_input_grad[:3])
    out, lse, probabilities = native.forward(
        query, key, value, scale, for_backward=needs_grad, causal=causal, mean_weights=mean_weights
    )
    if needs_grad:
        ctx.save_for_backward(query, key, value, out, lse, probabilities)
    ctx.scale, ctx.causal = scale, causal
    return out, lse


def kernel_backward(ctx, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of q, k, v saved by :func:`kernel_forward`."""
    return native.backward(*ctx.saved_tensors, grad_out, ctx.scale, causal=ctx.causal)


class _CausalKernelAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, value: Tensor, scale: float, causal: bool) -> tuple[Tensor, Tensor]:
        out, lse = kernel_forward(ctx, query, key, value, scale, causal)  # (B, H, T, D), (B, H, T)
        ctx.mark_non_differentiable(lse)
        return out, lse

    @staticmethod
    def backward(ctx, grad_out: Tensor, _grad_lse: None):
        return *kernel_backward(ctx, grad_out), None, None


def causal_attention_kernel(query: Tensor, key: Tensor, value: Tensor, scale: float, causal: bool = True,
                            with_lse: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """``softmax(scale q k^T + M) v`` (M causal, or 0 with ``causal=False``) for ``(B, H, T, D)`` inputs that
    :func:`attnlab.kernels.native.causal_attention.applies` accepts (rows of any layout: a
    tensor whose last dimension is strided is copied first; empty sizes skip the kernel);
    ``with_lse``: also the log-sum-exp of the scaled, masked scores' rows ``(B, H, T)``
    (no gradient flows through it)."""
    if is_empty(query, key):
        out = empty_attention(query, key, value)[0]
        return (out, query.new_full(query.shape[:-1], float("-inf"))) if with_lse else out
    dtype = query.dtype  # bf16 inputs are computed in fp32 (autograd casts the gradients back)
    query, key, value = (t.float() if t.stride(-1) == 1 else t.float().contiguous() for t in (query, key, value))
    out, lse = _CausalKernelAttention.apply(query, key, value, scale, causal)
    out = out.to(dtype)
    return (out, lse) if with_lse else out
