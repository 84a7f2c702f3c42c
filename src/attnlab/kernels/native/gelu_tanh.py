"""The ctypes binding of ``gelu_tanh.c``: GPT-2's tanh-GELU forward and backward in one
pass each over contiguous fp32 or bf16 CPU tensors (bf16: computed in fp32, each result
rounded once; used by :mod:`attnlab.kernels.gelu_tanh`)."""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from attnlab.kernels.native.build import bind

SERIAL_BELOW = 1 << 15  # elements: below this one thread is faster than waking the others


_SIGNATURES = {
    "attnlab_gelu_tanh_forward": (None, [ctypes.c_void_p] * 2 + [ctypes.c_int64, ctypes.c_int]),
    "attnlab_gelu_tanh_backward": (None, [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_int]),
    "attnlab_gelu_tanh_forward_bf16": (None, [ctypes.c_void_p] * 2 + [ctypes.c_int64, ctypes.c_int]),
    "attnlab_gelu_tanh_backward_bf16": (None, [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_int]),
}
_SUFFIX = {torch.float32: "", torch.bfloat16: "_bf16"}  # the C functions per dtype


def _library() -> ctypes.CDLL | None:
    return bind("gelu_tanh", _SIGNATURES)


def applies(x: Tensor) -> bool:
    """True for a contiguous fp32 or bf16 CPU tensor outside ``torch.compile``, where the kernel is built."""
    return (
        x.dtype in _SUFFIX and x.device.type == "cpu" and x.is_contiguous()
        and not torch.compiler.is_compiling() and _library() is not None
    )


def _threads(n: int) -> int:
    return 1 if n < SERIAL_BELOW else torch.get_num_threads()


def forward(x: Tensor) -> Tensor:
    """``x * sigmoid(c (x + a x^3))``; ``x`` as :func:`applies` requires."""
    y = torch.empty_like(x)
    function = getattr(_library(), "attnlab_gelu_tanh_forward" + _SUFFIX[x.dtype])
    function(x.data_ptr(), y.data_ptr(), x.numel(), _threads(x.numel()))
    return y


def backward(x: Tensor, grad: Tensor) -> Tensor:
    """The gradient with respect to ``x`` given ``grad`` of the output (any layout), in ``x``'s dtype."""
    grad = grad.to(x.dtype).contiguous()
    out = torch.empty_like(x)
    function = getattr(_library(), "attnlab_gelu_tanh_backward" + _SUFFIX[x.dtype])
    function(x.data_ptr(), grad.data_ptr(), out.data_ptr(), x.numel(), _threads(x.numel()))
    return out
