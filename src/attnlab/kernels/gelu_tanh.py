"""GELU with the tanh approximation (GPT-2's activation), in its sigmoid form.

    gelu_tanh(x) = x/2 * (1 + tanh(u)),   u = sqrt(2/pi) * (x + 0.044715 x^3)
                 = x * sigmoid(v),        v = 2u = c (x + a x^3),  c = 2 sqrt(2/pi), a = 0.044715
    d/dx         = s + x s (1 - s) v',    s = sigmoid(v),  v' = c (1 + 3 a x^2)

(``(1 + tanh(u)) / 2 = sigmoid(2u)``.) On the CPU PyTorch's tanh costs several times
sigmoid's per element, and each elementwise op is a pass over memory. The C kernel of
:mod:`attnlab.kernels.native.gelu_tanh` computes it in one pass each way (figures in
``docs/benchmarks.md``, "GPT"). Its backward
recomputes ``s`` from ``x``; the PyTorch-op fallback (no C compiler) saves ``s``. Both
agree with ``F.gelu(approximate="tanh")`` to within fp32 rounding (~5e-7 from the fp64
value on N(0, 9) inputs); tests check both against fp64.

:func:`gelu_tanh` takes the C kernel for contiguous fp32 and bf16 CPU tensors (bf16, as
bf16 autocast gives it: computed in fp32 and rounded once, as ``F.gelu`` does, in one pass
where PyTorch's bf16 kernel is ~2 ns per element), the PyTorch-op form for other fp32 CPU
tensors that need a gradient, and ``F.gelu`` otherwise (CUDA, ``torch.compile``: there the
fused kernel is as fast).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.kernels.native import gelu_tanh as native

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


class _NativeGeluTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return native.forward(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return native.backward(x, grad)


def gelu_tanh(x: Tensor) -> Tensor:
    """``F.gelu(x, approximate="tanh")``, faster where it matters (see the module docstring)."""
    if native.applies(x):
        return _NativeGeluTanh.apply(x)
    if x.requires_grad and torch.is_grad_enabled() and x.dtype == torch.float32 and x.device.type == "cpu":
        return _SigmoidGeluTanh.apply(x)
    return F.gelu(x, approximate="tanh")
