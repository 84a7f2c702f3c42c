"""The attention graph of an :class:`~attnlab.explain.explainable.Explainable` from a model's
own maps: linear placements (so they place gradients too), model-agnostic.

    encoder_decoder(encoder, cross, t)   M = S + 1 nodes: the S source tokens, then the
        decoder's query; encoder layers (B, H, S, S) keep the query node as is, the cross
        layer (B, H, T, S) gives the query node row t (the other rows: identity)
    dense_graph(edges, alpha, copies, m) a graph layer's per-edge weights alpha (E, H) on
        ``copies`` disjoint copies of an m-node graph -> (copies, H, m, m), rows = targets
    receptive_field(edge_index, node, hops, n) the nodes whose features reach ``node`` within
        ``hops`` message-passing layers (self included), sorted

Notation: B copies, H heads, S source tokens, T target steps, E edges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _with_query_node(layer: Tensor) -> Tensor:
    """``(B, H, S, S)`` -> ``(B, H, S + 1, S + 1)``, the extra node keeping itself."""
    out = F.pad(layer, (0, 1, 0, 1))
    corner = torch.zeros_like(out)
    corner[..., -1, -1] = 1
    return out + corner


def encoder_decoder(encoder: list[Tensor], cross: Tensor, t: int) -> list[Tensor]:
    """The encoder's layers and the cross layer's row ``t`` as one graph over S + 1 nodes."""
    b, h, _, s = cross.shape
    top = torch.eye(s + 1, dtype=cross.dtype, device=cross.device).expand(b, h, s + 1, s + 1)
    row = F.pad(cross[:, :, t], (0, 1))  # (B, H, S + 1): the query over the sources, 0 on itself
    top = torch.cat([top[:, :, :s], row[:, :, None]], dim=2)
    return [_with_query_node(layer) for layer in encoder] + [top]


def dense_graph(edges: Tensor, alpha: Tensor, copies: int, m: int) -> Tensor:
    """``alpha (E, H)`` on ``edges (2, E)`` (source, target) of ``copies`` x ``m`` nodes -> ``(copies, H, m, m)``."""
    src, dst = edges
    copy = dst // m
    dense = alpha.new_zeros(copies, m, m, alpha.shape[-1])
    dense = dense.index_put((copy, dst % m, src % m), alpha, accumulate=True)  # (copies, m, m, H)
    return dense.permute(0, 3, 1, 2)


def receptive_field(edge_index: Tensor, node: int, hops: int, num_nodes: int) -> Tensor:
    """Sorted node ids within ``hops`` incoming edges of ``node`` (it included)."""
    seen = torch.zeros(num_nodes, dtype=torch.bool)
    seen[node] = True
    for _ in range(hops):
        seen[edge_index[0][seen[edge_index[1]]]] = True
    return torch.nonzero(seen).flatten()


def subgraph(edge_index: Tensor, nodes: Tensor, num_nodes: int) -> Tensor:
    """The edges between ``nodes``, relabelled 0..len(nodes)-1."""
    index = torch.full((num_nodes,), -1, dtype=torch.long)
    index[nodes] = torch.arange(len(nodes))
    keep = (index[edge_index[0]] >= 0) & (index[edge_index[1]] >= 0)
    return index[edge_index[:, keep]]


def disjoint_copies(edge_index: Tensor, copies: int, m: int) -> Tensor:
    """``copies`` disjoint copies of an m-node graph's edges, copy c's nodes at c m .. c m + m - 1."""
    offsets = torch.arange(copies, device=edge_index.device).repeat_interleave(edge_index.shape[1]) * m
    return edge_index.repeat(1, copies) + offsets
