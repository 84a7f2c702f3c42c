"""Mean cross-entropy over a large vocabulary, in row blocks that stay in cache (CPU).

For logits ``z (N, V)`` and targets ``t (N,)`` (``ignore_index`` rows count for nothing),
with ``M`` the number of counted rows:

    loss = (1/M) sum_{i counted} (lse_i - z_{i,t_i}),   lse_i = log sum_j exp(z_ij)
    dloss/dz_ij = g/M (softmax(z_i)_j - [j = t_i])        (0 on ignored rows)

``F.cross_entropy`` computes the same in four whole-``(N, V)`` passes and tensors: an
fp32 copy (bf16 logits under autocast), ``log_softmax`` written out and saved, and in
backward a zero-filled ``(N, V)`` gradient with ``-g/M`` scattered at the targets, then
``log_softmax``'s backward (``grad - exp(out) * sum(grad)``, reading two ``(N, V)``
tensors) and a copy back to bf16. Here each block of rows (``2^19`` elements, 2 MiB in
fp32) is read once per direction: forward ``log_softmax`` (in fp32, whatever the logits'
dtype) and the target's entry; backward ``softmax`` recomputed from the logits, scaled by
``g/M``, ``g/M`` taken from the target's entry, written in the logits' dtype. Nothing of
size ``(N, V)`` is saved but the logits themselves. Same formula, fp32 arithmetic as in
the plain path; tests check both directions against fp64 and ``F.cross_entropy``.

:func:`cross_entropy` takes this path for 2-D fp32/bf16 CPU logits and ``F.cross_entropy``
otherwise (CUDA has its own fused kernel; fp64 is the reference). Shapes: logits
``(N, V)``, target ``(N,)`` int64; the loss is an fp32 scalar (NaN when every row is
ignored, as ``F.cross_entropy``'s).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BLOCK_ELEMENTS = 1 << 19  # elements of one row block: 2 MiB of fp32, within the L2/L3 of one core


def _rows(vocab: int) -> int:
    return max(1, BLOCK_ELEMENTS // max(vocab, 1))


class _BlockCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
        n, vocab = logits.shape
        counted = target != ignore_index  # (N,)
        safe = torch.where(counted, target, 0)[:, None]  # (N, 1): a valid column on ignored rows
        picked = torch.empty(n, 1, dtype=torch.float32, device=logits.device)  # log p(t_i)
        step = _rows(vocab)
        for s in range(0, n, step):
            log_p = torch.log_softmax(logits[s:s + step], -1, dtype=torch.float32)  # (rows, V)
            torch.gather(log_p, 1, safe[s:s + step], out=picked[s:s + step])
        count = counted.sum()
        ctx.save_for_backward(logits, safe, counted, count)
        return -torch.where(counted, picked[:, 0], 0.0).sum() / count

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        logits, safe, counted, count = ctx.saved_tensors
        scale = torch.where(counted, grad / count, 0.0)[:, None].float()  # (N, 1): g/M, 0 when ignored
        out = torch.empty_like(logits)
        step = _rows(logits.shape[1])
        for s in range(0, logits.shape[0], step):
            block = torch.softmax(logits[s:s + step], -1, dtype=torch.float32).mul_(scale[s:s + step])
            block.scatter_add_(1, safe[s:s + step], -scale[s:s + step])  # - g/M at the target
            out[s:s + step] = block
        return out, None, None


def applies(logits: Tensor, target: Tensor) -> bool:
    """True for 2-D fp32/bf16 CPU logits with one int64 target per row."""
    return (logits.dim() == 2 and logits.device.type == "cpu" and logits.dtype in (torch.float32, torch.bfloat16)
            and target.shape == logits.shape[:1] and target.dtype == torch.int64 and target.device == logits.device
            and not torch.compiler.is_compiling())


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = -100) -> Tensor:
    """``F.cross_entropy(logits.float(), target, ignore_index=ignore_index)`` (mean over the
    counted rows), in row blocks on the CPU (see the module docstring)."""
    if applies(logits, target):
        return _BlockCrossEntropy.apply(logits.contiguous(), target, ignore_index)
    return F.cross_entropy(logits.float(), target, ignore_index=ignore_index)
