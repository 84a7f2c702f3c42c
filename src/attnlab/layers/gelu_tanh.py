"""GELU with the tanh approximation (GPT-2's activation), in its sigmoid form.

    gelu_tanh(x) = x/2 * (1 + tanh(u)),   u = sqrt(2/pi) * (x + 0.044715 x^3)
                 = x * sigmoid(v),        v = 2u = c (x + a x^3),  c = 2 sqrt(2/pi), a = 0.044715
    d/dx         = s + x s (1 - s) v',    s = sigmoid(v),  v' = c (1 + 3 a x^2)

(``(1 + tanh(u)) / 2 = sigmoid(2u)``.) On the CPU PyTorch's tanh costs ~3 ns per fp32
element against ~0.5 ns for sigmoid, so ``F.gelu(x, approximate="tanh")`` takes 2.1 ms
forward and 2.2 ms backward on a (1024, 1024) fp32 tensor on one core; this form takes
~1.1 ms forward, and its backward, from the saved ``s``, ~1 ms (`benchmarks/gpt.py`'s
training step, 4 x 256: ~8 ms of ~310). It agrees with ``F.gelu(approximate="tanh")``
to within fp32 rounding (both ~4e-7 from the fp64 value on N(0, 1) inputs); tests check it.

:func:`gelu_tanh` takes this path for fp32 CPU tensors that need a gradient and calls
``F.gelu`` otherwise (inference, bf16 autocast, CUDA: there the fused kernel is faster).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_C = 2 * math.sqrt(2 / math.pi)
_A = 0.044715


class _SigmoidGeluTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        s = x * x  # the passes run in place on one scratch tensor: x^2
        s.mul_(_C * _A).add_(_C).mul_(x).sigmoid_()  # -> c (x + a x^3) -> s
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        x, s = ctx.saved_tensors
        d = x * x
        d.mul_(3 * _C * _A).add_(_C).mul_(x)  # x v'
        d.addcmul_(d, s, value=-1.0)  # x v' (1 - s)
        return d.add_(1.0).mul_(s).mul_(grad)  # s (1 + x v' (1 - s)) * grad


def gelu_tanh(x: Tensor) -> Tensor:
    """``F.gelu(x, approximate="tanh")``, faster where it matters (see the module docstring)."""
    if x.requires_grad and torch.is_grad_enabled() and x.dtype == torch.float32 and x.device.type == "cpu":
        return _SigmoidGeluTanh.apply(x)
    return F.gelu(x, approximate="tanh")
