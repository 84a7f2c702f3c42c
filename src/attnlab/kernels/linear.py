"""A linear map whose fp32 CPU products run in oneDNN: ``y = x W^T + b``.

    x: (..., in)   W: (out, in)   b: (out,)   y: (..., out)
    backward:  dx = dy W   (..., in),   dW = dy^T x   (out, in),   db = sum dy   (out,)

``F.linear`` on an fp32 CPU tensor is MKL's ``sgemm`` (through ``addmm``, which first
copies the broadcast bias into the output). PyTorch also ships oneDNN's fp32 matrix
product as ``torch.ops.mkldnn._linear_pointwise`` (an op of its oneDNN integration, a
private one: it is probed once against ``F.linear`` before use), with the bias fused. On
the Transformer shapes of this project it computes ``x W^T`` and ``dy W`` faster than
``sgemm``, and ``dy^T x`` no faster (``docs/benchmarks.md``, "Linear maps"):
:class:`_OneDNNLinear` takes oneDNN for the first two and keeps ``sgemm`` for the weight
gradient. Both are IEEE fp32 products
(no reduced-precision inner products); they differ in summation order only.
``benchmarks/linear.py`` measures the two side by side.

oneDNN has a fixed cost per call that ``sgemm`` has not: below some tens of millions of
multiply-adds per product (N x in x out; a 128-wide model at a few hundred rows) it is the
slower one, so products under ``MIN_MULTIPLY_ADDS`` stay in ``sgemm``. It also builds
(JIT-compiles) a kernel for each shape it meets and caches it: a new shape pays that once,
about the time of one product of the smallest size taken here.

Whether oneDNN wins depends on the CPU: measured side by side (``docs/benchmarks.md``), it
was 0-29% faster than ``sgemm`` on an AMD EPYC (Zen 4) and 0-13% slower on an Intel Xeon
with AMX (28% slower for ``dy W`` with a 3072-wide input), so it is taken on the vendors in
:data:`ONEDNN_VENDORS` only.

The choice depends on the inputs (shape, dtype, device, flags) and the machine only,
never on how often a shape was seen before: the same input gives the same bits on every
call, so a resumed training run repeats the uninterrupted one exactly.

:func:`linear` takes this path for fp32 CPU tensors on an x86-64 CPU of a vendor in
:data:`ONEDNN_VENDORS` with AVX2 or better, outside autocast and ``torch.compile`` (there
the compiler chooses), unless ``ATTNLAB_NATIVE=0``; everything else calls ``F.linear``. :class:`Linear` is
``nn.Linear`` with that forward: same parameters, same state dict.
"""

from __future__ import annotations

import functools
import platform

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.kernels.native.build import enabled as native_enabled

MIN_MULTIPLY_ADDS = 1 << 25  # N x in x out: smaller products stay in sgemm
ONEDNN_VENDORS = ("AuthenticAMD",)  # CPUs where oneDNN's fp32 product was measured faster than sgemm


@functools.cache
def cpu_vendor() -> str:
    """The CPU's ``vendor_id`` (``GenuineIntel``, ``AuthenticAMD``); "" where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def _product(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x W^T + b`` in oneDNN; ``x (N, in)``, ``weight (out, in)`` (a transposed view too)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _rows(x: Tensor) -> Tensor:
    return x.reshape(-1, x.shape[-1]).contiguous()  # (..., n) -> (N, n)


def _forward(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return _product(_rows(x), weight, bias).view(*x.shape[:-1], weight.shape[0])  # (..., out)


@functools.cache
def _onednn_available() -> bool:
    """oneDNN's op is registered, the CPU is an x86-64 one with AVX2 or AVX-512, and a
    probe product equals ``F.linear``'s (the op is private: its signature may change)."""
    if not (
        platform.machine().lower() in ("x86_64", "amd64")
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    ):
        return False
    x, weight, bias = torch.linspace(-1, 1, 24).view(3, 8), torch.linspace(-1, 1, 32).view(4, 8), torch.ones(4)
    try:
        with torch.no_grad():
            return torch.allclose(_product(x, weight, bias), F.linear(x, weight, bias), rtol=1e-5, atol=1e-6)
    except RuntimeError:
        return False


def onednn_applies(x: Tensor, weight: Tensor) -> bool:
    """True where :func:`linear` takes oneDNN: fp32 CPU, a large enough product, outside
    autocast and ``torch.compile``, oneDNN usable and faster on this CPU (see the module
    docstring). A function of the inputs, flags and machine only."""
    return (
        x.dtype == torch.float32 and weight.dtype == torch.float32 and x.device.type == "cpu"
        and x.dim() >= 2 and x.numel() * weight.shape[0] >= MIN_MULTIPLY_ADDS and weight.is_contiguous()
        and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling()
        and native_enabled() and cpu_vendor() in ONEDNN_VENDORS and _onednn_available()
    )


class _OneDNNLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _forward(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        rows, grad_rows = _rows(x), _rows(grad)  # (N, in), (N, out)
        # create_graph=True (a gradient penalty) records the backward: there plain,
        # differentiable products; otherwise oneDNN's
        product = torch.mm if torch.is_grad_enabled() else lambda a, b: _product(a, b.t(), None)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = product(grad_rows, weight).view(x.shape)  # dy W: (..., in)
        if ctx.needs_input_grad[1]:
            grad_weight = grad_rows.t() @ rows  # dy^T x: (out, in), in sgemm
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_rows.sum(0)  # (out,)
        return grad_x, grad_weight, grad_bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)``, with oneDNN's products for fp32 on the CPU."""
    if not onednn_applies(x, weight):
        return F.linear(x, weight, bias)
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    if needs_grad:
        return _OneDNNLinear.apply(x, weight, bias)
    return _forward(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` whose forward is :func:`linear`; ``(..., in) -> (..., out)``."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)
