r"""Graph attention: GAT, GATv2 and HAN's semantic attention.

GAT (Veličković et al. 2018, "Graph Attention Networks") attends over each node's
neighbours with a score built from per-node terms:

    e_ij     = LeakyReLU( a_dst · W x_i + a_src · W x_j [+ a_edge · W_e f_ij] )
    alpha_ij = softmax_{j in N(i) ∪ {i}} e_ij
    x'_i     = ||_{h=1..H} sum_j alpha^h_ij W^h x_j      (concat heads, or mean)

GATv2 (Brody et al. 2022, "How Attentive are Graph Attention Networks?") moves the
non-linearity inside, which makes the attention *dynamic* (the ranking of neighbours can
depend on the query node):

    e_ij = a · LeakyReLU( W_dst x_i + W_src x_j [+ W_e f_ij] )

Both scores are one function of per-node terms, paired per edge or per (i, j) pair; they
feed the shared neighbour core in :mod:`attnlab.attention.scatter` (edges sorted by
destination → segment softmax → sparse weighted sum) for an ``edge_index``, or the dense
core of :mod:`attnlab.attention.graph_dense` for an adjacency matrix (small graphs, traced
and exported graphs): the input alone chooses, and both give the same numbers. The layer matches PyTorch
Geometric's ``GATConv`` / ``GATv2Conv`` output and attention weights (``from_pyg``),
including its self-loop handling: existing self-loops are removed and one loop per node
is appended after the given edges, so the returned ``alpha`` lines up with PyG's.

HAN (Wang et al. 2019, "Heterogeneous Graph Attention Network") adds *semantic*
attention over the P meta-path views Z_p of the same nodes:

    w_p = mean_i q · tanh(W z^p_i + b),   beta = softmax_p(w),   Z = sum_p beta_p Z_p

Notation: N nodes (N_src / N_dst when bipartite), E edges (E' with self-loops),
F_in input features, H heads, C channels per head, D edge-feature size, P meta-paths.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.graph_dense import DenseGraph, is_adjacency
from attnlab.attention.scatter import (
    SortedGraph,
    check_edge_index,
    neighbour_sum,
    segment_softmax,
    sort_by_destination,
)
from attnlab.errors import AttnlabError

Pairing = Callable[[Tensor | None, Tensor], Tensor]  # (dst terms, src terms) -> one row per edge or pair
_FILL_REDUCE = {"mean": "mean", "add": "sum", "sum": "sum", "max": "amax", "min": "amin", "mul": "prod"}


def add_self_loops(
    edge_index: Tensor, num_nodes: int, edge_attr: Tensor | None = None, fill_value: float | str = "mean"
) -> tuple[Tensor, Tensor | None]:
    """Drop existing self-loops, then append the loops (0,0) … (num_nodes-1, num_nodes-1).

    A loop's edge features are ``fill_value`` (a number) or the reduction ("mean", "add",
    "max", "min", "mul") of the features of the node's incoming edges, as in PyG.
    """
    keep = edge_index[0] != edge_index[1]
    edge_index = edge_index[:, keep]
    loops = torch.arange(num_nodes, device=edge_index.device, dtype=edge_index.dtype)
    edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)  # (2, E')
    if edge_attr is None:
        return edge_index, None
    edge_attr = edge_attr[keep]
    if isinstance(fill_value, str):
        dst = edge_index[1, : edge_attr.size(0)]
        size = (max(num_nodes, int(dst.max()) + 1 if dst.numel() else 0), edge_attr.size(1))
        index = dst.view(-1, 1).expand_as(edge_attr)  # (E, D)
        loop_attr = edge_attr.new_zeros(size).scatter_reduce_(
            0, index, edge_attr, _FILL_REDUCE[fill_value], include_self=False
        )[:num_nodes]
    else:
        loop_attr = edge_attr.new_full((num_nodes, edge_attr.size(1)), float(fill_value))
    return edge_index, torch.cat([edge_attr, loop_attr], dim=0)


def _pair_edges(graph: SortedGraph, dst_terms: Tensor | None, src_terms: Tensor) -> Tensor:
    """Per-node terms ``(N, ...)`` -> one row per (sorted) edge j -> i: ``src_j [+ dst_i]``, ``(E', ...)``."""
    paired = src_terms.index_select(0, graph.src)
    return paired if dst_terms is None else paired + dst_terms.index_select(0, graph.dst)


class GATConv(nn.Module):
    """Graph attention layer, GAT (``v2=False``) or GATv2 (``v2=True``).

    Args:
        in_dim: input features, or ``(F_src, F_dst)`` for a bipartite graph.
        out_dim: C, channels per head.
        heads: H.
        concat: concatenate the heads (output H*C) or average them (output C).
        negative_slope: LeakyReLU slope of the score.
        dropout: dropout on the normalized attention coefficients (training only).
        add_self_loops: replace self-loops by one loop per node (PyG's behaviour).
        edge_dim: D, size of optional edge features that enter the score.
        fill_value: edge features of the added loops: a number or "mean"/"add"/"max"/"min"/"mul".
        bias: learn an output bias (and, for GATv2, biases of the two projections).
        share_weights: GATv2 only — one projection for sources and destinations.
        residual: add a learned linear skip connection from the destination features.

    Shapes:
        x: (N, F_in) or a pair ((N_src, F_src), (N_dst, F_dst)); edge_index: (2, E) with
        row 0 the source j and row 1 the destination i, or an adjacency (N_dst, N_src) --
        float edge counts or bool, see :func:`~attnlab.attention.graph_dense.dense_adjacency`
        -- for the dense path (no edge_attr; the weights come back per distinct pair);
        edge_attr: (E, D) or (E,);
        size: optional ``(N_src, N_dst)`` as in PyG; GAT (not GATv2) also takes
        ``(x_src, None)`` with ``size`` (no destination features: the score has no a_dst
        term, no residual). Output: (N_dst, H*C) if concat else (N_dst, C); with
        ``return_attention_weights=True`` also ``(edge_index (2, E'), alpha (E', H))``.
    """

    def __init__(
        self,
        in_dim: int | tuple[int, int],
        out_dim: int,
        heads: int = 1,
        *,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        v2: bool = False,
        edge_dim: int | None = None,
        fill_value: float | str = "mean",
        bias: bool = True,
        share_weights: bool = False,
        residual: bool = False,
    ):
        super().__init__()
        _check_positive(out_dim=out_dim, heads=heads)
        if not 0.0 <= dropout <= 1.0:  # what torch's dropout (and PyG's GATConv) accepts
            raise AttnlabError(f"dropout must be in [0, 1], got {dropout}")
        if isinstance(fill_value, str) and fill_value not in _FILL_REDUCE:
            raise AttnlabError(f"fill_value must be a number or one of {sorted(_FILL_REDUCE)}, got {fill_value!r}")
        in_src, in_dst = (in_dim, in_dim) if isinstance(in_dim, int) else tuple(in_dim)
        _check_positive(in_dim=min(in_src, in_dst))
        self.in_dim, self.out_dim, self.heads, self.v2 = in_dim, out_dim, heads, v2
        self.concat, self.negative_slope, self.dropout = concat, negative_slope, dropout
        self.add_self_loops, self.edge_dim, self.fill_value = add_self_loops, edge_dim, fill_value
        self.share_weights = share_weights
        hc = heads * out_dim
        self.lin_src = nn.Linear(in_src, hc, bias=bias and v2)
        shared = share_weights if v2 else isinstance(in_dim, int)
        self.lin_dst = self.lin_src if shared else nn.Linear(in_dst, hc, bias=bias and v2)
        self.lin_edge = nn.Linear(edge_dim, hc, bias=False) if edge_dim is not None else None
        if v2:
            self.att = nn.Parameter(torch.empty(heads, out_dim))
        else:
            self.att_src = nn.Parameter(torch.empty(heads, out_dim))
            self.att_dst = nn.Parameter(torch.empty(heads, out_dim))
            self.att_edge = nn.Parameter(torch.empty(heads, out_dim)) if edge_dim is not None else None
        total = hc if concat else out_dim
        self.res = nn.Linear(in_dst, total, bias=False) if residual else None
        self.bias = nn.Parameter(torch.zeros(total)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot (Xavier-uniform) weights and zero biases, as in the GAT paper."""
        for module in (self.lin_src, self.lin_dst, self.lin_edge, self.res):
            if module is not None:
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for name in ("att", "att_src", "att_dst", "att_edge"):
            param = getattr(self, name, None)
            if param is not None:
                bound = (6.0 / (param.size(0) + param.size(1))) ** 0.5
                nn.init.uniform_(param, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor],
        edge_index: Tensor,
        return_attention_weights: bool = False,
        *,
        edge_attr: Tensor | None = None,
        size: tuple[int, int] | None = None,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        if isinstance(return_attention_weights, Tensor):
            raise AttnlabError("pass edge features by keyword: conv(x, edge_index, edge_attr=...)")
        x_src, x_dst = self._check_inputs(x)
        num_src, num_dst = self._check_size(size, x_src, x_dst)
        dense = is_adjacency(edge_index)
        if dense:  # an adjacency (N_dst, N_src): attnlab.attention.graph_dense
            if edge_attr is not None:
                raise AttnlabError("edge_attr needs an edge_index (2, E); an adjacency matrix carries no edge features")
            graph = DenseGraph(edge_index, num_src, num_dst, self.add_self_loops)
        else:
            edge_attr = self._check_edge_attr(edge_attr, edge_index)
            check_edge_index(edge_index, num_src, num_dst)
            if self.add_self_loops:  # loops for the nodes that are both sources and destinations
                edge_index, edge_attr = add_self_loops(edge_index, min(num_src, num_dst), edge_attr, self.fill_value)
            graph = sort_by_destination(edge_index, num_src, num_dst)
            if edge_attr is not None:
                edge_attr = edge_attr.index_select(0, graph.order)  # (E', D), sorted like the graph
        H, C = self.heads, self.out_dim
        h_src = self.lin_src(x_src).view(-1, H, C)  # (N_src, H, C)
        if x_dst is None:
            h_dst = None
        elif self.lin_dst is self.lin_src and x_dst is x_src:
            h_dst = h_src
        else:
            h_dst = self.lin_dst(x_dst).view(-1, H, C)  # (N_dst, H, C)
        pair = graph.pair if dense else partial(_pair_edges, graph)
        scores = (self._scores_v2 if self.v2 else self._scores_v1)(h_src, h_dst, edge_attr, pair)  # (E', H) | (N_dst, N_src, H)
        if dense:
            out, alpha = graph.attend(scores, h_src, self.dropout if self.training else 0.0)  # (N_dst, H, C), (H, N_dst, N_src)
        else:
            alpha = F.dropout(segment_softmax(scores, graph), p=self.dropout, training=self.training)  # (E', H)
            out = neighbour_sum(alpha, h_src, graph)  # (N_dst, H, C)
        out = out.reshape(-1, H * C) if self.concat else out.mean(dim=1)
        if self.res is not None and x_dst is not None:
            out = out + self.res(x_dst)
        if self.bias is not None:
            out = out + self.bias
        if not return_attention_weights:
            return out
        if dense:
            return out, graph.edges(alpha)
        alpha_in_input_order = torch.empty_like(alpha).index_copy(0, graph.order, alpha)
        return out, (edge_index, alpha_in_input_order)

    def _scores_v1(self, h_src: Tensor, h_dst: Tensor | None, edge_attr: Tensor | None, pair: Pairing) -> Tensor:
        """e_ij = LeakyReLU(a_src·h_j + a_dst·h_i [+ a_edge·W_e f_ij]), from per-node terms."""
        score_dst = None if h_dst is None else (h_dst * self.att_dst).sum(-1)  # (N_dst, H); (x_src, None): none
        scores = pair(score_dst, (h_src * self.att_src).sum(-1))  # (E', H)
        if edge_attr is not None:
            # a_edge · (W_e f) = f · (W_e^T a_edge): fold the projection, never build (E', H, C)
            w_edge = self.lin_edge.weight.view(self.heads, self.out_dim, -1)  # (H, C, D)
            scores = scores + edge_attr @ torch.einsum("hcd,hc->dh", w_edge, self.att_edge)
        return F.leaky_relu(scores, self.negative_slope)

    def _scores_v2(self, h_src: Tensor, h_dst: Tensor, edge_attr: Tensor | None, pair: Pairing) -> Tensor:
        """e_ij = a · LeakyReLU(W_dst x_i + W_src x_j [+ W_e f_ij]) — needs (E', H, C)."""
        hidden = pair(h_dst, h_src)  # (E', H, C)
        if edge_attr is not None:
            hidden = hidden + self.lin_edge(edge_attr).view(-1, self.heads, self.out_dim)
        return (F.leaky_relu(hidden, self.negative_slope) * self.att).sum(-1)

    def _check_inputs(self, x: Tensor | tuple[Tensor, Tensor | None]) -> tuple[Tensor, Tensor | None]:
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else tuple(x)
        if x_dst is None and self.v2:
            raise AttnlabError("GATv2 needs destination features: x = (x_src, x_dst), not (x_src, None)")
        for name, t, dim in (("x_src", x_src, self.lin_src.in_features), ("x_dst", x_dst, self.lin_dst.in_features)):
            if name == "x_dst" and t is None:
                continue
            if not isinstance(t, Tensor) or t.dim() != 2 or t.size(1) != dim:
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise AttnlabError(f"{name} must be (num_nodes, {dim}), got {shape}")
            if not t.is_floating_point():
                raise AttnlabError(f"{name} must be a floating-point tensor, got {t.dtype}")
        dtype = self.lin_src.weight.dtype
        for name, t in (("x_src", x_src), ("x_dst", x_dst)):
            if t is not None and t.dtype != dtype and not torch.is_autocast_enabled(t.device.type):
                raise AttnlabError(f"{name} must have the layer's dtype {dtype}, got {t.dtype}")
        return x_src, x_dst

    @staticmethod
    def _check_size(size, x_src: Tensor, x_dst: Tensor | None) -> tuple[int, int]:
        """``(N_src, N_dst)`` from ``size`` (PyG's argument) or the features, checked against both."""
        if size is None:
            if x_dst is None:
                raise AttnlabError("x = (x_src, None) needs size=(N_src, N_dst)")
            return x_src.size(0), x_dst.size(0)
        if len(size) != 2 or not all(isinstance(n, int) and n >= 0 for n in size):
            raise AttnlabError(f"size must be (N_src, N_dst), two non-negative ints, got {size!r}")
        for name, t, n in (("x_src", x_src, size[0]), ("x_dst", x_dst, size[1])):
            if t is not None and t.size(0) != n:
                raise AttnlabError(f"size={tuple(size)} says {n} nodes for {name}, which has {t.size(0)}")
        return size[0], size[1]

    def _check_edge_attr(self, edge_attr: Tensor | None, edge_index: Tensor) -> Tensor | None:
        if edge_attr is None or self.lin_edge is None:
            if edge_attr is not None:
                raise AttnlabError("edge_attr given but the layer was built without edge_dim")
            return None
        edge_attr = edge_attr.view(-1, 1) if edge_attr.dim() == 1 else edge_attr
        if edge_attr.dim() != 2 or edge_attr.size(1) != self.edge_dim or edge_attr.size(0) != edge_index.size(-1):
            raise AttnlabError(f"edge_attr must be (E={edge_index.size(-1)}, {self.edge_dim}), got {tuple(edge_attr.shape)}")
        return edge_attr

    @classmethod
    def from_pyg(cls, conv: nn.Module) -> GATConv:
        """Copy a torch_geometric ``GATConv`` or ``GATv2Conv``: same outputs and weights."""
        v2 = type(conv).__name__ == "GATv2Conv"
        if type(conv).__name__ not in ("GATConv", "GATv2Conv"):
            raise AttnlabError(f"from_pyg expects torch_geometric GATConv or GATv2Conv, got {type(conv).__name__}")
        if isinstance(conv.fill_value, Tensor):
            raise AttnlabError("from_pyg: a tensor fill_value is not supported; use a number or a reduction name")
        layer = cls(
            conv.in_channels, conv.out_channels, conv.heads, concat=conv.concat,
            negative_slope=conv.negative_slope, dropout=conv.dropout, add_self_loops=conv.add_self_loops,
            v2=v2, edge_dim=conv.edge_dim, fill_value=conv.fill_value, bias=conv.bias is not None,
            share_weights=getattr(conv, "share_weights", False), residual=conv.res is not None,
        )
        renames = {"lin_l": "lin_src", "lin_r": "lin_dst", "lin": "lin_src"}
        state = {}
        for name, value in conv.named_parameters():
            module, _, rest = name.rpartition(".")
            name = f"{renames.get(module, module)}.{rest}" if module else rest
            state[name] = value.detach().reshape(layer.get_parameter(name).shape)
        if layer.lin_dst is layer.lin_src:
            state.update({k.replace("lin_src.", "lin_dst."): v for k, v in state.items() if k.startswith("lin_src.")})
        layer.load_state_dict(state, strict=True)
        return layer.train(conv.training)

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}, heads={self.heads}, v2={self.v2}, concat={self.concat}"


class SemanticAttention(nn.Module):
    """HAN's semantic-level attention: one weight per meta-path, shared by all nodes.

    Shapes: z (N, P, D) -> output (N, D), beta (P,) summing to 1.
    """

    def __init__(self, dim: int, hidden_dim: int = 128):
        super().__init__()
        _check_positive(dim=dim, hidden_dim=hidden_dim)
        self.project = nn.Linear(dim, hidden_dim)
        self.query = nn.Parameter(torch.empty(hidden_dim))
        nn.init.normal_(self.query, std=hidden_dim**-0.5)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        if z.dim() != 3:
            raise AttnlabError(f"z must be (num_nodes, num_metapaths, dim), got {tuple(z.shape)}")
        w = (torch.tanh(self.project(z)) @ self.query).mean(dim=0)  # (P,)
        beta = torch.softmax(w, dim=0)
        return torch.einsum("p,npd->nd", beta, z), beta


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise AttnlabError(f"{name} must be a positive integer, got {value!r}")
