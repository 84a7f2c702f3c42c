"""Which path computes scaled dot-product attention: chosen in one place, from the inputs'
shapes, dtypes, devices and flags only (never from call history), by measurement (the
figures are in ``docs/benchmarks.md``, "Attention core" and "GPT").

- ``"fused"``: PyTorch's fused kernel (flash attention on the CPU) — the default when
  the weights are not needed: fastest and O(L) memory.
- ``"fused_weights"``: the flash kernel for the output plus the weights from its
  log-sum-exp (:mod:`attnlab.kernels.fused_weights`) — weights asked for, fp32, CPU,
  no dropout: faster than ``nn.MultiheadAttention``'s fallback.
- ``"causal_kernel_weights"``, ``"self_kernel_weights"``: the same with attnlab's C kernel
  for the output (the conditions of ``"causal_kernel"``/``"self_kernel"`` below, weights
  asked for): its forward and backward beat the flash kernel's on these shapes.
- ``"causal_kernel"``: attnlab's C kernels for causal self-attention, forward and backward
  (:mod:`attnlab.kernels.causal_kernel`) — on the CPU, causal and no other mask, no dropout,
  no weights, the head width a multiple of the build's vector width (16 with AVX-512); fp32
  at any T (the fp32 GPT training step, causal inference, long sequences: 1.6-3x the flash
  kernel at T = 1024-4096), and bf16 past ``PLAIN_BF16_MAX_SCORES`` scores (computed in
  fp32, yet faster than flash's bf16 there).
- ``"self_kernel"``: the same C kernel for unmasked self-attention (q, k, v of one shape,
  no mask, not causal; otherwise the conditions above): BERT's and ViT's fp32 steps on
  unpadded batches.
- ``"causal_bmm"``: plain causal self-attention with its own backward
  (:mod:`attnlab.kernels.causal_bmm`) — short bf16 sequences (up to ``PLAIN_BF16_MAX_SCORES``
  scores) on the CPU with gradients,
  causal and no other mask, no dropout, no weights: the bf16 GPT training step.
- ``"self_bmm"``: the same for unmasked self-attention: BERT's and ViT's bf16 steps.
- ``"plain"``: scores, softmax and a weighted sum (:func:`attnlab.attention.core.attend`)
  — weights asked for in any other case (so the weights returned are the ones the output
  used, dropout included), and other short bf16 sequences on the CPU with gradients, where
  the flash kernel's backward is slower than bf16 matrix products.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.kernels.causal_bmm import causal_attention_bmm
from attnlab.kernels.causal_kernel import causal_attention_kernel
from attnlab.kernels.fused_weights import flash_available
from attnlab.kernels.native import causal_attention

PLAIN_BF16_MAX_SCORES = 256 * 256  # Lq * Lk up to which bf16 training takes the plain path
SELF_ATTENTION_PATHS = ("causal_kernel", "self_kernel", "causal_bmm", "self_bmm")  # run by self_attention()
KERNEL_WEIGHTS_PATHS = ("causal_kernel_weights", "self_kernel_weights")  # fused_weights.kernel_attention_with_weights


def choose_path(
    query: Tensor, key: Tensor, value: Tensor, need_weights: bool, dropout_p: float, causal_only: bool = False,
    unmasked: bool = False,
) -> str:
    """``"fused"``, ``"fused_weights"``, ``"causal_kernel"``, ``"self_kernel"`` (``+ "_weights"``),
    ``"causal_bmm"``, ``"self_bmm"`` or ``"plain"`` for these inputs (see the module
    docstring); ``causal_only``: causal self-attention with no other mask; ``unmasked``:
    self-attention (q, k, v of one shape) with no mask at all."""
    on_cpu = query.device.type == "cpu"
    num_keys = key.shape[-2]
    bf16_training = (
        on_cpu and query.dtype == torch.bfloat16 and query.requires_grad and torch.is_grad_enabled()
        and query.shape[-2] * num_keys <= PLAIN_BF16_MAX_SCORES
    )
    kind = "causal" if causal_only else "self" if unmasked else None
    # bf16 takes the C kernel (in fp32) where flash or the plain path would: past the short
    # lengths of causal_bmm/self_bmm and the plain path
    fp32_or_long = query.dtype == torch.float32 or query.shape[-2] * num_keys > PLAIN_BF16_MAX_SCORES
    if kind and dropout_p == 0 and fp32_or_long and causal_attention.applies(query, key, value):
        return f"{kind}_kernel" + ("_weights" if need_weights else "")
    if not need_weights:
        if bf16_training and kind and dropout_p == 0 and query.dim() == 4:
            return f"{kind}_bmm"
        return "plain" if bf16_training else "fused"
    if (
        dropout_p == 0 and on_cpu and flash_available() and query.dim() == 4
        and query.dtype == torch.float32 and query.shape[-1] == value.shape[-1]
    ):
        return "fused_weights"
    return "plain"


def self_attention(path: str, query: Tensor, key: Tensor, value: Tensor, scale: float) -> Tensor:
    """Run one of :data:`SELF_ATTENTION_PATHS` on ``(B, H, T, D)`` inputs: ``(B, H, T, D)``."""
    attention = causal_attention_kernel if path.endswith("_kernel") else causal_attention_bmm
    return attention(query, key, value, scale, causal=path.startswith("causal"))
