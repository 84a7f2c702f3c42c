r"""Graph attention over a dense adjacency: the (N_dst, N_src) form of the neighbour core.

:class:`~attnlab.attention.graph.GATConv` takes, in place of an ``edge_index (2, E)``, an
adjacency matrix ``A (N_dst, N_src)`` -- ``A_ij`` the number of edges j -> i (a float
tensor; a bool one for 0/1) -- and then scores every (destination, source) pair and
attends through the shared core (:func:`attnlab.attention.core.attend`), the edges as the
mask:

    e_ij     = the layer's score of the pair (GAT or GATv2, the same function as on edges)
    alpha_ij = A_ij exp(e_ij) / sum_k A_ik exp(e_ik) = softmax_j(e_ij + log A_ij)
    x'_i     = sum_j alpha_ij W x_j

so an edge given twice weighs twice, as it does on the edge list, and a node without
incoming edges gets a zero output. Self-loops are handled as on edges: with
``add_self_loops`` every existing loop is replaced by one loop per node. The result is the
edge-list layer's, output, weights and gradients (``tests/attention/test_graph_dense.py``).

It needs no sorting, no sparse product and no value-dependent size: what a small graph, a
``torch.compile`` or an ONNX export (``attnlab.export``) wants. Memory grows as N_dst x
N_src x H (x C for GATv2): a few thousand nodes.

Notation: N_src / N_dst source / destination nodes, E edges, H heads, C channels per head.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.attention.core import attend
from attnlab.errors import AttnlabError


def is_adjacency(edges: Tensor) -> bool:
    """Whether a layer's graph input is an adjacency matrix (bool or float) rather than an
    ``edge_index`` (integer node ids): the input alone decides the path."""
    return isinstance(edges, Tensor) and (edges.dtype == torch.bool or edges.is_floating_point())


def dense_adjacency(edge_index: Tensor, num_nodes: int | tuple[int, int], dtype: torch.dtype = torch.float32) -> Tensor:
    """``edge_index (2, E)`` (row 0 source j, row 1 destination i) -> ``A (N_dst, N_src)``,
    ``A_ij`` = how many times j -> i is given (``dtype`` float), or whether it is (bool).
    ``num_nodes``: N, or ``(N_src, N_dst)`` for a bipartite graph."""
    num_src, num_dst = (num_nodes, num_nodes) if isinstance(num_nodes, int) else num_nodes
    dst, src = edge_index[1].long(), edge_index[0].long()
    ones = torch.ones(dst.shape, dtype=dtype, device=edge_index.device)
    a = torch.zeros(num_dst, num_src, dtype=dtype, device=edge_index.device)
    return a.index_put((dst, src), ones, accumulate=dtype != torch.bool)


class DenseGraph:
    """An adjacency as a layer's graph: :meth:`pair` lays per-node terms out as
    ``(N_dst, N_src, ...)``, :meth:`attend` normalizes over each destination's sources."""

    def __init__(self, adjacency: Tensor, num_src: int, num_dst: int, self_loops: bool):
        if adjacency.dim() != 2 or tuple(adjacency.shape) != (num_dst, num_src):
            raise AttnlabError(f"adjacency must be (N_dst, N_src) = ({num_dst}, {num_src}), got "
                               f"{tuple(adjacency.shape)} (an edge_index holds integer node ids)")
        if self_loops:  # replace existing loops by one per node, as the edge-list layer does
            eye = torch.arange(num_dst, device=adjacency.device)[:, None] == torch.arange(num_src, device=adjacency.device)
            adjacency = adjacency | eye if adjacency.dtype == torch.bool else adjacency.masked_fill(eye, 1.0)
        if adjacency.dtype != torch.bool and not torch.compiler.is_compiling() and bool((adjacency < 0).any()):
            raise AttnlabError("adjacency must count edges (values >= 0), got a negative entry")
        self.adjacency, self.num_dst = adjacency, num_dst  # (N_dst, N_src)

    def pair(self, dst_terms: Tensor | None, src_terms: Tensor) -> Tensor:
        """``dst_terms (N_dst, ...)`` + ``src_terms (N_src, ...)`` -> ``(N_dst, N_src, ...)``
        (no destination term when ``dst_terms`` is None)."""
        paired = src_terms[None].expand(self.num_dst, *src_terms.shape)
        return paired if dst_terms is None else paired + dst_terms[:, None]

    def attend(self, scores: Tensor, h_src: Tensor, dropout_p: float) -> tuple[Tensor, Tensor]:
        """``scores (N_dst, N_src, H)``, ``h_src (N_src, H, C)`` -> ``out (N_dst, H, C)``,
        ``alpha (H, N_dst, N_src)`` (before dropout)."""
        a = self.adjacency
        mask = a if a.dtype == torch.bool else a.to(scores.dtype).log()  # log A: -inf off the edges, log 2 on a double edge
        out = attend(scores.permute(2, 0, 1), h_src.transpose(0, 1), mask=mask, dropout_p=dropout_p)  # (H, N_dst, N_src)
        return out.output.transpose(0, 1), out.weights  # (H, N_dst, C) -> (N_dst, H, C)

    def edges(self, alpha: Tensor) -> tuple[Tensor, Tensor]:
        """The weights as the edge-list layer returns them: ``edge_index (2, E')`` (each pair
        once, by destination; a pair given k times has the k copies' total weight) and
        ``alpha (E', H)``."""
        dst, src = (self.adjacency != 0).nonzero(as_tuple=True)
        return torch.stack([src, dst]), alpha[:, dst, src].t()
