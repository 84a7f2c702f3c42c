"""Attention over neighbours: the graph form of *mask → normalize → weighted sum*.

Dense attention normalizes each query's row of a (Lq, Lk) score matrix. On a graph the
"row" of destination node i is the ragged set of its incoming edges N(i), so

    alpha_ij = exp(e_ij - m_i) / sum_{k in N(i)} exp(e_ik - m_i),   m_i = max_{k in N(i)} e_ik
    out_i    = sum_{j in N(i)} alpha_ij * x_j

with the per-destination max m_i for numerical stability (as in PyTorch Geometric's
``softmax``). A node with no incoming edge gets a zero output, never NaN.

How it is made fast: the edges are sorted by destination once per call, which turns the
graph into a CSR matrix A (row i = the edges into i, values alpha). The weighted sum is
then, per head, a sparse-dense matmul ``A_h @ x_h`` (MKL/cuSPARSE), and its backward is
``A_h^T @ grad`` for the features plus a sampled dense-dense product (SDDMM)
``<grad_i, x_j>`` on the edges for the weights. No (E, H, C) message tensor is ever
built, which is where a gather-multiply-scatter implementation spends most of its time
and memory. For fp32 on the CPU the same three sums run in C on the (N, H, C) layout
(:mod:`attnlab.kernels.native.graph_edges`: one read of each edge's two rows, repeated
edges included, no transposed copies), 2-3x faster than MKL's CSR products there.

Notation: N_src / N_dst source / destination nodes, E edges, H heads, C channels per
head. ``edge_index`` is (2, E): row 0 the source j, row 1 the destination i (PyG's
"source to target" flow).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.kernels.native import graph_edges

# CPU sparse kernels (MKL) run in fp32/fp64 only; other dtypes are computed in fp32.
_SPARSE_DTYPES = (torch.float32, torch.float64)


@dataclass
class SortedGraph:
    """Edges sorted by destination (CSR rows), plus the way back to the caller's order.

    Attributes:
        src, dst: (E,) source / destination of each edge, sorted by ``dst`` (stable).
        ptr: (N_dst + 1,) row pointers: the edges into node i are ``ptr[i]:ptr[i+1]``.
        order: (E,) ``sorted_edges = edges[order]``.
        num_src, num_dst: node counts of the two sides.
    """

    src: Tensor
    dst: Tensor
    ptr: Tensor
    order: Tensor
    num_src: int
    num_dst: int
    _transposed: tuple[Tensor, Tensor, Tensor] | None = None
    _has_duplicates: bool | None = None

    @property
    def num_edges(self) -> int:
        return self.src.numel()

    def has_duplicates(self) -> bool:
        """Whether some edge (j -> i) appears more than once (a multigraph, as PyG allows)."""
        if self._has_duplicates is None:
            keys = self.dst * self.num_src + self.src  # (E,): one id per (i, j) pair
            self._has_duplicates = torch.unique(keys).numel() < keys.numel()
        return self._has_duplicates

    def transposed(self) -> tuple[Tensor, Tensor, Tensor]:
        """(ptr, dst, perm) of the same edges grouped by source, for ``A^T @ grad``."""
        if self._transposed is None:
            perm = torch.argsort(self.src, stable=True)
            self._transposed = (_row_pointers(self.src[perm], self.num_src), self.dst[perm], perm)
        return self._transposed


def _row_pointers(sorted_rows: Tensor, num_rows: int) -> Tensor:
    ptr = torch.zeros(num_rows + 1, dtype=torch.long, device=sorted_rows.device)
    torch.cumsum(torch.bincount(sorted_rows, minlength=num_rows), 0, out=ptr[1:])
    return ptr


def check_edge_index(edge_index: Tensor, num_src: int, num_dst: int) -> None:
    """Raise a clear error for a malformed ``edge_index`` (shape, dtype, node ids)."""
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
        raise AttnlabError(f"edge_index must be a (2, E) tensor, got {shape}")
    if edge_index.dtype not in (torch.int32, torch.int64):
        raise AttnlabError(f"edge_index must hold integer node ids, got dtype {edge_index.dtype}")
    if edge_index.numel() == 0:
        return
    lo = int(edge_index.min())
    hi_src, hi_dst = int(edge_index[0].max()), int(edge_index[1].max())
    if lo < 0 or hi_src >= num_src or hi_dst >= num_dst:
        raise AttnlabError(
            f"edge_index holds node ids in [{lo}, {max(hi_src, hi_dst)}] but the graph has "
            f"{num_src} source and {num_dst} destination nodes"
        )


def sort_by_destination(edge_index: Tensor, num_src: int, num_dst: int) -> SortedGraph:
    """Group the edges by destination node (stable, so PyG's summation order is kept)."""
    edge_index = edge_index.long()
    order = torch.argsort(edge_index[1], stable=True)
    src, dst = edge_index[0, order], edge_index[1, order]  # (E,), (E,)
    return SortedGraph(src, dst, _row_pointers(dst, num_dst), order, num_src, num_dst)


def segment_softmax(scores: Tensor, graph: SortedGraph) -> Tensor:
    """Softmax of (E, H) edge scores over each destination's incoming edges.

    Numerically stable (per-destination max); differentiable by autograd.
    """
    if scores.size(0) == 0:
        return scores
    peak = torch.segment_reduce(scores.detach(), "max", offsets=graph.ptr, axis=0)  # (N_dst, H)
    weights = (scores - peak.index_select(0, graph.dst)).exp()  # (E, H)
    total = torch.segment_reduce(weights, "sum", offsets=graph.ptr, axis=0) + 1e-16  # (N_dst, H)
    return weights / total.index_select(0, graph.dst)


def _csr(ptr: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # torch calls CSR "beta"; the ops used here are tested against PyG
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(ptr, cols, values, shape, check_invariants=False)


def block_diagonal(ptr: Tensor, cols: Tensor, num_cols: int, heads: int) -> tuple[Tensor, Tensor]:
    """CSR indices of diag(A, ..., A), one block per head: (H*N_rows + 1,), (H*E,).

    Head h owns rows h*N_rows… and columns h*N_cols…, so all heads are one sparse
    product instead of H small ones (each op is a parallel region: fewer is faster,
    most of all on a busy machine). int32 indices when they fit (MKL's native type).
    """
    nnz = cols.numel()
    dtype = torch.int32 if heads * max(nnz, num_cols, ptr.numel()) < 2**31 else torch.int64
    offsets = torch.arange(heads, device=cols.device).unsqueeze(1)  # (H, 1)
    crow = torch.cat([(ptr[:-1] + offsets * nnz).flatten(), ptr.new_full((1,), heads * nnz)])
    return crow.to(dtype), (cols + offsets * num_cols).flatten().to(dtype)


def _head_major(x: Tensor) -> Tensor:
    """(N, H, C) -> (H*N, C): the rows of head h are contiguous, as the block-diagonal matrix
    wants; bf16/fp16 as fp32 (PyTorch's sparse CSR products have no reduced-precision CPU
    kernel: under bf16 autocast the sparse steps compute, and return, fp32)."""
    if x.dtype in (torch.bfloat16, torch.float16):
        x = x.float()
    return x.transpose(0, 1).reshape(-1, x.size(2))


def _spmm(block: tuple[Tensor, Tensor], weights: Tensor, dense: Tensor, num_rows: int) -> Tensor:
    """Per head h: ``out[:, h] = A_h @ dense[:, h]``; weights (E, H), dense (N_cols, H, C) -> (num_rows, H, C)."""
    heads = dense.size(1)
    dense = _head_major(dense)  # (H*N_cols, C)
    matrix = _csr(*block, weights.t().reshape(-1).to(dense.dtype), (heads * num_rows, dense.size(0)))
    with torch.autocast(dense.device.type, enabled=False):  # autocast would cast the product back to bf16
        out = matrix @ dense  # (H*num_rows, C)
    return out.view(heads, num_rows, -1).transpose(0, 1)


def _sddmm(block: tuple[Tensor, Tensor], left: Tensor, right: Tensor) -> Tensor:
    """Per edge (j -> i) and head h: ``<left[i, h], right[j, h]>``; -> (E, H)."""
    heads, nnz = left.size(1), block[1].numel()
    left, right = _head_major(left), _head_major(right)  # (H*N, C), (H*M, C)
    pattern = _csr(*block, left.new_zeros(nnz), (left.size(0), right.size(0)))
    with torch.autocast(left.device.type, enabled=False):
        product = torch.sparse.sampled_addmm(pattern, left, right.t(), beta=0.0)
    return product.values().view(heads, -1).t()


_GATHER_BLOCK_ELEMENTS = 1 << 22  # (edges, H, C) elements gathered at once by _edge_dots


def _edge_dots(graph: SortedGraph, left: Tensor, right: Tensor) -> Tensor:
    """Per edge (j -> i) and head h: ``<left[i, h], right[j, h]>``; -> (E, H).

    The gathered form of :func:`_sddmm` for multigraphs (a CSR pattern with repeated
    entries is coalesced by the sparse kernel, which then fails), in blocks of edges so
    no full (E, H, C) tensor is built."""
    heads, width = left.size(1), left.size(2)
    out = left.new_empty(graph.num_edges, heads)
    step = max(1, _GATHER_BLOCK_ELEMENTS // max(1, heads * width))
    for start in range(0, graph.num_edges, step):
        edges = slice(start, start + step)
        gathered = left.index_select(0, graph.dst[edges]) * right.index_select(0, graph.src[edges])  # (e, H, C)
        out[edges] = gathered.sum(-1)
    return out


class _NeighbourSum(torch.autograd.Function):
    """out_i = sum_{j in N(i)} alpha_ij x_j, with a backward that builds no (E, H, C) tensor.

    fp32 CPU inputs take the C kernels of :mod:`attnlab.kernels.native.graph_edges` (the
    same sums on the (N, H, C) layout, repeated edges included) where they are built; other
    inputs the sparse CSR products below."""

    @staticmethod
    def forward(ctx, alpha: Tensor, x: Tensor, graph: SortedGraph) -> Tensor:
        ctx.graph = graph
        ctx.native = alpha.dtype == torch.float32 and graph_edges.applies(x)
        if ctx.native:
            ctx.save_for_backward(alpha, x)
            return graph_edges.weighted_sum(graph.ptr, graph.src, alpha, x)  # (N_dst, H, C)
        block = block_diagonal(graph.ptr, graph.src, graph.num_src, x.size(1))
        ctx.save_for_backward(alpha, x, *block)
        return _spmm(block, alpha, x, graph.num_dst)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        alpha, x, *block = ctx.saved_tensors
        graph: SortedGraph = ctx.graph
        grad_alpha = grad_x = None
        if ctx.native:
            grad_out = grad_out.float()
            if ctx.needs_input_grad[0]:  # dL/dalpha_ij = <grad_i, x_j>
                grad_alpha = graph_edges.edge_dots(graph.dst, graph.src, grad_out, x)
            if ctx.needs_input_grad[1]:  # dL/dx_j = sum_{i: j in N(i)} alpha_ij grad_i, the edges grouped by source
                ptr_t, dst_t, perm = graph.transposed()
                grad_x = graph_edges.weighted_sum(ptr_t, dst_t, alpha, grad_out, edge_ids=perm)
            return grad_alpha, grad_x, None
        if ctx.needs_input_grad[0]:
            # dL/dalpha_ij = <grad_i, x_j>
            grad_alpha = _edge_dots(graph, grad_out, x) if graph.has_duplicates() else _sddmm(block, grad_out, x)
        if ctx.needs_input_grad[1]:
            ptr_t, dst_t, perm = graph.transposed()
            block_t = block_diagonal(ptr_t, dst_t, graph.num_dst, x.size(1))
            grad_x = _spmm(block_t, alpha.index_select(0, perm), grad_out, graph.num_src)
        return grad_alpha, grad_x, None


def neighbour_sum(alpha: Tensor, x: Tensor, graph: SortedGraph) -> Tensor:
    """Weighted sum over incoming edges: alpha (E, H), x (N_src, H, C) -> (N_dst, H, C)."""
    if graph.num_edges == 0:
        return x.new_zeros(graph.num_dst, x.size(1), x.size(2))
    dtype = x.dtype
    if dtype not in _SPARSE_DTYPES:
        alpha, x = alpha.float(), x.float()
    return _NeighbourSum.apply(alpha, x, graph).to(dtype)
