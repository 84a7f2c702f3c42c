"""Self-attention, causal or unmasked, as three batched matrix products with its own
backward (bf16 training).

    S = scale * Q K^T + M        M_ij = -inf for j > i when causal (one fused baddbmm), else M = 0
    P = softmax(S)               in the input dtype, accumulated in fp32 by the kernel
    O = P V
    backward:  dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),
               dQ = scale * dS K,  dK = scale * dS^T Q

For short sequences in bf16 on the CPU this beats both PyTorch's flash kernel (whose
backward is slow there) and the autograd of the general plain path (which adds a
``masked_fill`` forward and backward, a scaling pass and an fp32 -> bf16 copy of the
weights, autocast's softmax being fp32); figures in ``docs/benchmarks.md`` ("GPT").

Used by :func:`attnlab.attention.core.scaled_dot_product_attention` when
:func:`attnlab.kernels.backend.choose_path` says ``"causal_bmm"`` or ``"self_bmm"``.
Shapes: q, k, v ``(B, H, L, D)`` (same heads and length), output ``(B, H, L, D)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.kernels.empty import empty_attention, is_empty


class _CausalBmmAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, value: Tensor, scale: float, causal: bool) -> Tensor:
        b, h, length, d = query.shape
        q, k, v = (t.reshape(b * h, length, t.shape[-1]) for t in (query, key, value))  # (BH, L, D)
        if causal:
            future = torch.full((length, length), float("-inf"), dtype=q.dtype, device=q.device).triu_(1)
        else:  # beta = 0 below: the product alone
            future = q.new_empty(length, length)
        with torch.autocast(q.device.type, enabled=False):  # autocast would run the softmax in fp32
            scores = torch.baddbmm(future, q, k.transpose(1, 2), beta=1 if causal else 0, alpha=scale)  # (BH, L, L)
            weights = scores.softmax(-1)
            out = torch.bmm(weights, v)  # (BH, L, Dv)
        ctx.save_for_backward(q, k, v, weights)
        ctx.scale = scale
        return out.view(b, h, length, -1)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        q, k, v, weights = ctx.saved_tensors
        b, h, length, dv = grad_out.shape
        grad_out = grad_out.reshape(b * h, length, dv)
        grad_v = torch.bmm(weights.transpose(1, 2), grad_out)
        grad_weights = torch.bmm(grad_out, v.transpose(1, 2))  # (BH, L, L)
        grad_scores = torch._softmax_backward_data(grad_weights, weights, -1, weights.dtype)
        grad_q = torch.bmm(grad_scores, k).mul_(ctx.scale)
        grad_k = torch.bmm(grad_scores.transpose(1, 2), q).mul_(ctx.scale)
        shape = (b, h, length, -1)
        return grad_q.view(shape), grad_k.view(shape), grad_v.view(shape), None, None


def causal_attention_bmm(query: Tensor, key: Tensor, value: Tensor, scale: float, causal: bool = True) -> Tensor:
    """``softmax(scale q k^T + M) v`` (M causal, or 0 with ``causal=False``) for
    ``(B, H, L, D)`` inputs: ``(B, H, L, Dv)``."""
    if is_empty(query, key):
        return empty_attention(query, key, value)[0]
    return _CausalBmmAttention.apply(query, key, value, scale, causal)
