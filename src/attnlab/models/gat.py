"""Node classifiers built on graph attention: GAT and HAN (trained by :mod:`attnlab.apps.graph`).

GAT (Veličković et al. 2018), the paper's transductive setting: dropout(0.6) → GATConv
(8 heads × 8 hidden, concatenated) → ELU → dropout(0.6) → GATConv (1 head, or 8 averaged
on PubMed) → class logits; Adam lr 0.005, weight decay 5e-4.

HAN (Wang et al. 2019): for each meta-path p a GATConv over the meta-path neighbours
gives Z_p (node-level attention); semantic attention weighs the P views
(beta_p, summing to 1) into Z, and a linear layer gives the logits.

Notation: N nodes, E edges, F input features, K classes, H heads, C hidden per head,
P meta-paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.graph import GATConv, SemanticAttention
from attnlab.attention.maps import Attentions, GraphAttention
from attnlab.errors import AttnlabError
from attnlab.models.base import PretrainedModel


@dataclass
class GATConfig:
    in_dim: int
    num_classes: int
    hidden_dim: int = 8
    heads: int = 8
    out_heads: int = 1
    num_layers: int = 2
    dropout: float = 0.6
    negative_slope: float = 0.2
    v2: bool = False


GAT_PRESETS = {
    "cora": GATConfig(in_dim=1433, num_classes=7),
    "pubmed": GATConfig(in_dim=500, num_classes=3, out_heads=8),
}


@dataclass
class HANConfig:
    in_dim: int
    num_classes: int
    num_metapaths: int
    hidden_dim: int = 8
    heads: int = 8
    semantic_dim: int = 128
    dropout: float = 0.6


HAN_PRESETS = {"dblp": HANConfig(in_dim=334, num_classes=4, num_metapaths=3)}


@dataclass
class NodeClassifierOutput:
    """``logits (N, K)``; ``attentions`` with ``need_weights=True``: per GAT layer
    ``layers.{l}.graph`` / per HAN meta-path ``metapath.{p}.graph``, each a
    :class:`GraphAttention` ``(edge_index (2, E'), alpha (E', H))``, axes ("nodes", "nodes")."""

    logits: Tensor
    attentions: Attentions | None = None
    semantic_weights: Tensor | None = None  # HAN only: (P,) summing to 1


class GAT(PretrainedModel):
    """Stacked GATConv layers for node classification; ``gat(x, edge_index).logits``."""

    config_class = GATConfig
    model_type = "gat"

    def __init__(self, config: GATConfig):
        super().__init__()
        if config.num_layers < 1:
            raise AttnlabError(f"num_layers must be at least 1, got {config.num_layers}")
        self.config = config
        dims = [config.in_dim] + [config.hidden_dim * config.heads] * (config.num_layers - 1)
        common = dict(dropout=config.dropout, negative_slope=config.negative_slope, v2=config.v2)
        self.convs = nn.ModuleList(GATConv(d, config.hidden_dim, config.heads, **common) for d in dims[:-1])
        last_concat = config.out_heads == 1
        self.convs.append(GATConv(dims[-1], config.num_classes, config.out_heads, concat=last_concat, **common))

    def forward(self, x: Tensor, edge_index: Tensor, *, need_weights: bool = False) -> NodeClassifierOutput:
        """``x (N, F)``, ``edge_index (2, E)`` -> class logits ``(N, K)``."""
        attentions = Attentions() if need_weights else None
        for i, conv in enumerate(self.convs):
            x = F.dropout(x, self.config.dropout, self.training)
            x = conv(x, edge_index, need_weights)
            if need_weights:
                x, (edges, alpha) = x
                attentions.add(f"layers.{i}.graph", GraphAttention(edges, alpha), kind="graph", axes=("nodes", "nodes"))
            if i < len(self.convs) - 1:
                x = F.elu(x)
        return NodeClassifierOutput(x, attentions)


class HAN(PretrainedModel):
    """Node-level GAT per meta-path + semantic attention; ``han(x, [edge_index_p, ...])``."""

    config_class = HANConfig
    model_type = "han"

    def __init__(self, config: HANConfig):
        super().__init__()
        self.config = config
        self.node_level = nn.ModuleList(
            GATConv(config.in_dim, config.hidden_dim, config.heads, dropout=config.dropout)
            for _ in range(config.num_metapaths)
        )
        width = config.hidden_dim * config.heads
        self.semantic = SemanticAttention(width, config.semantic_dim)
        self.classifier = nn.Linear(width, config.num_classes)

    def forward(self, x: Tensor, metapath_edges: list[Tensor], *, need_weights: bool = False) -> NodeClassifierOutput:
        """``x (N, F)``, one ``edge_index (2, E_p)`` per meta-path -> class logits ``(N, K)``."""
        if len(metapath_edges) != self.config.num_metapaths:
            raise AttnlabError(f"expected {self.config.num_metapaths} meta-path graphs, got {len(metapath_edges)}")
        x = F.dropout(x, self.config.dropout, self.training)
        views, attentions = [], Attentions() if need_weights else None
        for p, (conv, edge_index) in enumerate(zip(self.node_level, metapath_edges)):
            z = conv(x, edge_index, need_weights)
            if need_weights:
                z, (edges, alpha) = z
                attentions.add(f"metapath.{p}.graph", GraphAttention(edges, alpha), kind="metapath", axes=("nodes", "nodes"))
            views.append(F.elu(z))
        z, beta = self.semantic(torch.stack(views, dim=1))  # (N, P, H*C) -> (N, H*C), (P,)
        logits = self.classifier(F.dropout(z, self.config.dropout, self.training))
        return NodeClassifierOutput(logits, attentions, beta)
