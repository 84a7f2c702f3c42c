"""The ctypes binding of ``causal_attention.c`` (T <= MAX_LENGTH) and ``flash_attention.c``
(longer sequences, in query blocks and key chunks): self-attention forward and backward,
causal or unmasked, for fp32 CPU tensors (used by :mod:`attnlab.kernels.causal_kernel`).

Tensors are ``(B, H, T, D)`` views in any layout whose rows are contiguous (the
per-head views of a packed q/k/v projection are read in place); the outputs are
allocated ``(B, T, H, D)`` and returned as ``(B, H, T, D)`` views, so merging the heads
back is free. For the backward the forward keeps the log-sum-exp of each row, and the
attention probabilities themselves when they take no more memory than two of q, k, v, o
(T padded to the vector width <= 2 D): the backward then skips recomputing them.
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from attnlab.kernels.native.build import bind

MAX_LENGTH = 512  # positions: past it the T x T scores leave L2 and flash_attention.c takes over

_INT64_ARRAY = ctypes.POINTER(ctypes.c_int64)


def _signature(tensors: int) -> tuple[object, list]:
    """``int f(tensor pointers..., B, H, T, D, strides, scale, threads, causal)``."""
    return ctypes.c_int, [ctypes.c_void_p] * tensors + [ctypes.c_int64] * 4 + [
        _INT64_ARRAY, ctypes.c_float, ctypes.c_int, ctypes.c_int]


_SIGNATURES = {
    "attnlab_causal_attention_vector_width": (ctypes.c_int, []),
    "attnlab_causal_attention_forward": _signature(7),
    "attnlab_causal_attention_backward": _signature(10),
}
_FLASH_SIGNATURES = {"attnlab_flash_attention_forward": _signature(5), "attnlab_flash_attention_backward": _signature(9)}


def _library() -> ctypes.CDLL | None:
    return bind("causal_attention", _SIGNATURES)


def _flash_library() -> ctypes.CDLL | None:
    return bind("flash_attention", _FLASH_SIGNATURES)


def _blocked(length: int) -> bool:
    """Whether T positions take flash_attention.c (queries in blocks, keys in chunks)."""
    return length > MAX_LENGTH


def applies(query: Tensor, key: Tensor, value: Tensor) -> bool:
    """True for fp32 or bf16 CPU ``(B, H, T, D)`` tensors of one shape, rows contiguous, D a multiple of
    the build's vector width, outside ``torch.compile``, where the kernel for this T
    (``causal_attention.c`` up to MAX_LENGTH, ``flash_attention.c`` past it) is built. The
    kernels compute in fp32: bf16 inputs are converted by the caller
    (:func:`attnlab.kernels.causal_kernel.causal_attention_kernel`)."""
    if not (query.dim() == 4 and query.shape == key.shape == value.shape):
        return False
    if any(
        t.dtype not in (torch.float32, torch.bfloat16) or t.device.type != "cpu" or t.stride(-1) != 1
        for t in (query, key, value)
    ):
        return False
    if torch.compiler.is_compiling():
        return False
    library = _library()
    if _blocked(query.shape[2]) and _flash_library() is None:
        return False
    return library is not None and query.shape[-1] % library.attnlab_causal_attention_vector_width() == 0


def _strides(*tensors: Tensor) -> ctypes.Array:
    """Batch, head and row strides of each ``(B, H, T, D)`` tensor, in order."""
    values = [s for t in tensors for s in t.stride()[:3]]
    return (ctypes.c_int64 * len(values))(*values)


def _heads_view_like(query: Tensor) -> Tensor:
    """An empty ``(B, H, T, D)`` view of a ``(B, T, H, D)`` tensor."""
    b, h, t, d = query.shape
    return query.new_empty(b, t, h, d).transpose(1, 2)


def _check(failed: int) -> None:
    if failed:
        raise MemoryError("attnlab causal attention: could not allocate its per-thread workspace")


def _padded_length(length: int) -> int:
    width = _library().attnlab_causal_attention_vector_width()
    return -(-length // width) * width


def forward(
    query: Tensor, key: Tensor, value: Tensor, scale: float, for_backward: bool = False, causal: bool = True,
    mean_weights: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(output (B, H, T, D), log-sum-exp of the scaled scores (B, H, T), probabilities)``;
    the probabilities ``(B, H, T, T padded)`` only ``for_backward`` where they are kept
    (see the module docstring), else None. ``causal=False``: every query sees every key.
    ``mean_weights``: a contiguous fp32 ``(B, T, T)`` tensor the weights averaged over the
    heads are written into (T <= MAX_LENGTH: the whole scores are in cache there)."""
    b, h, t, d = query.shape
    if mean_weights is not None and (_blocked(t) or mean_weights.shape != (b, t, t) or not mean_weights.is_contiguous()):
        raise ValueError(f"mean_weights must be a contiguous ({b}, {t}, {t}) tensor with T <= {MAX_LENGTH}")
    out = _heads_view_like(query)
    lse = query.new_empty(b, h, t)
    if _blocked(t):
        failed = _flash_library().attnlab_flash_attention_forward(
            query.data_ptr(), key.data_ptr(), value.data_ptr(), out.data_ptr(), lse.data_ptr(),
            b, h, t, d, _strides(query, key, value, out), scale, torch.get_num_threads(), int(causal),
        )
        _check(failed)
        return out, lse, None
    padded = _padded_length(t)
    probabilities = query.new_empty(b, h, t, padded) if for_backward and padded <= 2 * d else None
    failed = _library().attnlab_causal_attention_forward(
        query.data_ptr(), key.data_ptr(), value.data_ptr(), out.data_ptr(), lse.data_ptr(),
        None if probabilities is None else probabilities.data_ptr(),
        None if mean_weights is None else mean_weights.data_ptr(),
        b, h, t, d, _strides(query, key, value, out), scale, torch.get_num_threads(), int(causal),
    )
    _check(failed)
    return out, lse, probabilities


def backward(
    query: Tensor, key: Tensor, value: Tensor, out: Tensor, lse: Tensor, probabilities: Tensor | None,
    grad_out: Tensor, scale: float, causal: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients with respect to query, key and value, given ``grad_out (B, H, T, D)``
    and what :func:`forward` returned."""
    if grad_out.stride(-1) != 1:
        grad_out = grad_out.contiguous()
    b, h, t, d = query.shape
    grads = [_heads_view_like(query) for _ in range(3)]
    if _blocked(t):
        failed = _flash_library().attnlab_flash_attention_backward(
            query.data_ptr(), key.data_ptr(), value.data_ptr(), out.data_ptr(), lse.data_ptr(), grad_out.data_ptr(),
            *(g.data_ptr() for g in grads), b, h, t, d, _strides(query, key, value, out, grad_out, *grads), scale,
            torch.get_num_threads(), int(causal),
        )
        _check(failed)
        return grads[0], grads[1], grads[2]
    failed = _library().attnlab_causal_attention_backward(
        query.data_ptr(), key.data_ptr(), value.data_ptr(), out.data_ptr(), lse.data_ptr(),
        None if probabilities is None else probabilities.data_ptr(), grad_out.data_ptr(),
        *(g.data_ptr() for g in grads), b, h, t, d, _strides(query, key, value, out, grad_out, *grads), scale,
        torch.get_num_threads(), int(causal),
    )
    _check(failed)
    return grads[0], grads[1], grads[2]
