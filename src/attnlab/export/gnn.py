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

The export traces the models' own forward (activations, HAN's semantic attention over the
meta-path views, the classifier) on a shallow copy whose GATConv layers are
:class:`DenseGATConv` s sharing their weights (:func:`dense`).

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
from attnlab.export.graphs import Traced
from attnlab.export.spec import Exported, Graph


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


class DenseGATConv(nn.Module):
    """A :class:`GATConv`'s weights attending densely (:func:`dense_gat_conv`): the layer an
    exported GAT or HAN calls in place of the sparse one, with the same call signature."""

    def __init__(self, conv: nn.Module, model: str):
        super().__init__()
        check_conv(conv, model)
        self.conv = conv

    def forward(self, x: Tensor, edge_index: Tensor, return_attention_weights: bool = False) -> Tensor:
        return dense_gat_conv(self.conv, x, adjacency(edge_index, x.shape[0]))


def dense(model: nn.Module, layers: str) -> nn.Module:
    """A shallow copy of ``model`` (weights shared) whose GATConv list ``layers`` attends
    densely: its own forward -- activations, HAN's semantic attention, the classifier -- is
    what the export traces."""
    copy = object.__new__(type(model))
    copy.__dict__ = {**model.__dict__, "_modules": dict(model._modules)}
    setattr(copy, layers, nn.ModuleList(DenseGATConv(conv, type(model).__name__) for conv in getattr(model, layers)))
    return copy.eval()


_DENSE_NOTE = ("attention is dense over the nodes (an (H, N, N) score matrix): any graph size runs, "
               "memory grows as N^2 (a few thousand nodes); duplicate edges count once")
_EDGES = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 2], [1, 2, 3, 4, 5, 6, 0, 5]])  # an example graph of 7 nodes


def gat_graphs(model: nn.Module) -> Exported:
    c = model.config
    axes = {"x": {0: "nodes"}, "edge_index": {1: "edges"}, "logits": {0: "nodes"}}
    graph = Graph("model", Traced(dense(model, "convs"), lambda m, x, edge_index: m(x, edge_index).logits),
                  (torch.randn(7, c.in_dim), _EDGES), ["x", "edge_index"], ["logits"], axes)
    return Exported([graph], {"config": {"in_dim": c.in_dim, "num_classes": c.num_classes}, "note": _DENSE_NOTE})


def han_graphs(model: nn.Module) -> Exported:
    c = model.config
    names = [f"edge_index.{p}" for p in range(c.num_metapaths)]
    edges = tuple(_EDGES[:, : 8 - p % 7].contiguous() for p in range(c.num_metapaths))  # unequal edge counts
    axes = {"x": {0: "nodes"}, "logits": {0: "nodes"}, **{name: {1: f"edges.{p}"} for p, name in enumerate(names)}}
    def run(m: nn.Module, x: Tensor, *metapath_edges: Tensor) -> tuple[Tensor, Tensor]:
        out = m(x, list(metapath_edges))
        return out.logits, out.semantic_weights

    graph = Graph("model", Traced(dense(model, "node_level"), run), (torch.randn(7, c.in_dim), *edges), ["x", *names],
                  ["logits", "semantic_weights"], axes)
    info = {"config": {"in_dim": c.in_dim, "num_classes": c.num_classes, "num_metapaths": c.num_metapaths}, "note": _DENSE_NOTE}
    return Exported([graph], info)
