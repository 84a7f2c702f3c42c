"""The ctypes binding of ``graph_edges.c``: GAT's weighted sum over CSR rows and its
per-edge dot products, on (N, H, C) fp32 CPU node features (used by
:mod:`attnlab.attention.scatter`; shapes and equations in the C file)."""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from attnlab.kernels.native.build import bind

SERIAL_BELOW = 1 << 15  # edges x H x C: below this one thread is faster than waking the others

_SIGNATURES = {
    "attnlab_graph_weighted_sum": (None, [ctypes.c_void_p] * 6 + [ctypes.c_int64] * 3 + [ctypes.c_int]),
    "attnlab_graph_edge_dots": (None, [ctypes.c_void_p] * 5 + [ctypes.c_int64] * 3 + [ctypes.c_int]),
}


def _library() -> ctypes.CDLL | None:
    return bind("graph_edges", _SIGNATURES)


def applies(*features: Tensor) -> bool:
    """True for (N, H, C) fp32 CPU features outside ``torch.compile``, where the kernel is built."""
    return (
        all(f.dtype == torch.float32 and f.device.type == "cpu" and f.dim() == 3 for f in features)
        and not torch.compiler.is_compiling() and _library() is not None
    )


def _threads(work: int) -> int:
    return 1 if work < SERIAL_BELOW else torch.get_num_threads()


def _index(t: Tensor) -> Tensor:
    return t.to(torch.int64).contiguous()


def weighted_sum(ptr: Tensor, cols: Tensor, alpha: Tensor, x: Tensor, edge_ids: Tensor | None = None) -> Tensor:
    """``out[i, h] = sum_{k in ptr[i]:ptr[i+1]} alpha[e_k, h] x[cols[k], h]``: ptr ``(R + 1,)``,
    cols ``(E,)``, alpha ``(E, H)``, x ``(N, H, C)`` -> ``(R, H, C)``; ``e_k = edge_ids[k]`` or ``k``."""
    ptr, cols, alpha, x = _index(ptr), _index(cols), alpha.float().contiguous(), x.contiguous()
    ids = None if edge_ids is None else _index(edge_ids)
    heads, width = x.shape[1], x.shape[2]
    out = x.new_empty(ptr.numel() - 1, heads, width)
    _library().attnlab_graph_weighted_sum(
        ptr.data_ptr(), cols.data_ptr(), None if ids is None else ids.data_ptr(), alpha.data_ptr(), x.data_ptr(),
        out.data_ptr(), out.shape[0], heads, width, _threads(cols.numel() * heads * width))
    return out


def edge_dots(dst: Tensor, src: Tensor, left: Tensor, right: Tensor) -> Tensor:
    """``out[e, h] = <left[dst[e], h], right[src[e], h]>``: left ``(N_dst, H, C)``, right
    ``(N_src, H, C)`` -> ``(E, H)``."""
    dst, src, left, right = _index(dst), _index(src), left.contiguous(), right.contiguous()
    heads, width = left.shape[1], left.shape[2]
    out = left.new_empty(dst.numel(), heads)
    _library().attnlab_graph_edge_dots(dst.data_ptr(), src.data_ptr(), left.data_ptr(), right.data_ptr(),
                                       out.data_ptr(), dst.numel(), heads, width, _threads(dst.numel() * heads * width))
    return out
