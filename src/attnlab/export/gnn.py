r"""ONNX graphs of the graph-attention node classifiers, GAT and HAN, with attention dense
over the nodes.

attnlab's :class:`~attnlab.attention.graph.GATConv` attends over sorted edge lists
(segment softmax, sparse sums), which needs sorting and value-dependent sizes a graph
cannot hold. Here each layer scores every (destination, source) pair and masks the pairs
that are not edges, from a boolean adjacency built in the graph from ``edge_index``:

    A_ij     = 1 if (j -> i) is an edge or i = j (self-loops, as the layer adds them)
    e_ij     = LeakyReLU(a_dst · W x_i + a_src · W x_j)            (GAT)
             = a · LeakyReLU(W_dst x_i + W_src x_j)                 (GATv2)
    alpha_ij = softmax_j over A_ij = 1,  x'_i = ||_h sum_j alpha^h_ij W^h x_j (+ W_res x_i) + b

HAN runs one such layer per meta-path and weighs the views by semantic attention:
``w_p = mean_i q · tanh(W z^p_i + b)``, ``beta = softmax_p(w)``, ``Z = sum_p beta_p Z_p``.

Any graph size runs (nodes and edges are dynamic axes); the score matrix is ``(H, N, N)``,
so memory grows as N^2 (a few thousand nodes). Duplicate edges count once (the sparse
layer counts each copy). Dropout is absent: exports are inference graphs.

Notation: N nodes, E edges, F input features, H heads, C channels per head, K classes,
P meta-paths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError


def adjacency(edge_index: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """``edge_index (2, E)`` (row 0 source, row 1 destination) -> boolean ``(N_dst, N_src)``
    adjacency without and with self-loops."""
    a = torch.zeros(n, n, dtype=torch.bool, device=edge_index.device)
    a = a.index_put((edge_index[1], edge_index[0]), torch.ones_like(edge_index[0], dtype=torch.bool))
    nodes = torch.arange(n, device=edge_index.device)
    return a, a | (nodes[:, None] == nodes[None, :])


def check_conv(conv: nn.Module, model: str) -> None:
    """The layers these graphs compute: square graphs, no edge features."""
    if conv.lin_edge is not None or not isinstance(conv.in_dim, int):
        raise AttnlabError(f"ONNX export of {model}: layers with edge features or bipartite inputs are not exported")


def dense_gat_conv(conv: nn.Module, x: Tensor, edges: tuple[Tensor, Tensor]) -> Tensor:
    """One :class:`GATConv` over a dense adjacency: ``x (N, F)``, ``edges`` from
    :func:`adjacency` -> ``(N, H*C)`` (concatenated heads) or ``(N, C)`` (mean)."""
    allowed = edges[1] if conv.add_self_loops else edges[0]  # (N_dst, N_src)
    heads, c = conv.heads, conv.out_dim
    h_src = F.linear(x, conv.lin_src.weight, conv.lin_src.bias).view(-1, heads, c)  # (N, H, C)
    h_dst = F.linear(x, conv.lin_dst.weight, conv.lin_dst.bias).view(-1, heads, c)
    if conv.v2:
        hidden = h_dst.transpose(0, 1)[:, :, None] + h_src.transpose(0, 1)[:, None]  # (H, N_dst, N_src, C)
        scores = (F.leaky_relu(hidden, conv.negative_slope) * conv.att[:, None, None]).sum(-1)
    else:
        s_src = (h_src * conv.att_src).sum(-1).t()  # (H, N)
        s_dst = (h_dst * conv.att_dst).sum(-1).t()
        scores = F.leaky_relu(s_dst[:, :, None] + s_src[:, None, :], conv.negative_slope)  # (H, N_dst, N_src)
    alpha = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min).softmax(-1)
    if not conv.add_self_loops:  # a node without in-edges attends to nothing: zero, as the sparse layer gives
        alpha = alpha.masked_fill(~allowed, 0.0)
    out = (alpha @ h_src.transpose(0, 1)).transpose(0, 1)  # (H, N, C) -> (N, H, C)
    out = out.reshape(-1, heads * c) if conv.concat else out.mean(dim=1)
    if conv.res is not None:
        out = out + F.linear(x, conv.res.weight)
    return out if conv.bias is None else out + conv.bias


class GATGraph(nn.Module):
    """GAT node classification: ``x (N, F)``, ``edge_index (2, E)`` -> ``logits (N, K)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        for conv in model.convs:
            check_conv(conv, "GAT")

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        edges = adjacency(edge_index, x.shape[0])
        convs = self.model.convs
        for i, conv in enumerate(convs):
            x = dense_gat_conv(conv, x, edges)
            if i < len(convs) - 1:
                x = F.elu(x)
        return x


class HANGraph(nn.Module):
    """HAN node classification: ``x (N, F)`` and one ``edge_index (2, E_p)`` per meta-path
    -> ``logits (N, K)``, ``semantic_weights (P,)`` (beta, summing to 1)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        for conv in model.node_level:
            check_conv(conv, "HAN")

    def forward(self, x: Tensor, *metapath_edges: Tensor) -> tuple[Tensor, Tensor]:
        m = self.model
        views = [F.elu(dense_gat_conv(conv, x, adjacency(edge_index, x.shape[0])))
                 for conv, edge_index in zip(m.node_level, metapath_edges)]
        z = torch.stack(views, dim=1)  # (N, P, H*C)
        semantic = m.semantic
        w = (torch.tanh(F.linear(z, semantic.project.weight, semantic.project.bias)) @ semantic.query).mean(dim=0)  # (P,)
        beta = w.softmax(dim=0)
        z = (beta[None, :, None] * z).sum(dim=1)  # (N, H*C)
        return F.linear(z, m.classifier.weight, m.classifier.bias), beta
