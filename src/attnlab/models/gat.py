"""Node classifiers built on graph attention: GAT and HAN, and their full-batch training loop.

GAT (Veličković et al. 2018), the paper's transductive setting: dropout(0.6) → GATConv
(8 heads × 8 hidden, concatenated) → ELU → dropout(0.6) → GATConv (1 head, or 8 averaged
on PubMed) → class logits; Adam lr 0.005, weight decay 5e-4.

HAN (Wang et al. 2019): for each meta-path p a GATConv over the meta-path neighbours
gives Z_p (node-level attention); semantic attention weighs the P views
(beta_p, summing to 1) into Z, and a linear layer gives the logits.

Training is a plain full-batch loop (the whole graph is one batch): the loss is taken
on the training nodes, the model with the best validation accuracy is kept.

Notation: N nodes, E edges, F input features, K classes, H heads, C hidden per head,
P meta-paths.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.graph import GATConv, SemanticAttention
from attnlab.errors import AttnlabError
from attnlab.models.base import PretrainedModel
from attnlab.training.interrupts import deferred_interrupt
from attnlab.training.progress import Progress


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
    """logits (N, K); attentions per GAT layer / per meta-path: (edge_index (2, E'), alpha (E', H))."""

    logits: Tensor
    attentions: tuple[tuple[Tensor, Tensor], ...] | None = None
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

    def forward(self, x: Tensor, edge_index: Tensor, return_attention_weights: bool = False) -> NodeClassifierOutput:
        attentions = []
        for i, conv in enumerate(self.convs):
            x = F.dropout(x, self.config.dropout, self.training)
            x = conv(x, edge_index, return_attention_weights)
            if return_attention_weights:
                x, attention = x
                attentions.append(attention)
            if i < len(self.convs) - 1:
                x = F.elu(x)
        return NodeClassifierOutput(x, tuple(attentions) if return_attention_weights else None)


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

    def forward(
        self, x: Tensor, metapath_edges: list[Tensor], return_attention_weights: bool = False
    ) -> NodeClassifierOutput:
        if len(metapath_edges) != self.config.num_metapaths:
            raise AttnlabError(f"expected {self.config.num_metapaths} meta-path graphs, got {len(metapath_edges)}")
        x = F.dropout(x, self.config.dropout, self.training)
        views, attentions = [], []
        for conv, edge_index in zip(self.node_level, metapath_edges):
            z, attention = conv(x, edge_index, return_attention_weights=True)
            views.append(F.elu(z))
            attentions.append(attention)
        z, beta = self.semantic(torch.stack(views, dim=1))  # (N, P, H*C) -> (N, H*C), (P,)
        logits = self.classifier(F.dropout(z, self.config.dropout, self.training))
        return NodeClassifierOutput(logits, tuple(attentions) if return_attention_weights else None, beta)


@dataclass
class FitConfig:
    """Full-batch training: Adam, cross-entropy on the training nodes, best-validation model."""

    epochs: int = 200
    lr: float = 0.005
    weight_decay: float = 5e-4
    patience: int = 100
    progress: bool = True


@dataclass
class FitResult:
    train_acc: float
    val_acc: float
    test_acc: float
    best_epoch: int
    losses: list[float] = field(default_factory=list)
    interrupted: bool = False


def accuracy(logits: Tensor, y: Tensor, mask: Tensor) -> float:
    if not bool(mask.any()):
        return float("nan")
    return float((logits[mask].argmax(-1) == y[mask]).float().mean())


def fit_node_classifier(
    model: nn.Module, logits_fn: Callable[[], Tensor], data, config: FitConfig | None = None
) -> FitResult:
    """Train ``model`` in place; ``logits_fn()`` runs it on the whole graph → (N, K).

    ``data`` has ``y`` and ``train_mask`` / ``val_mask`` / ``test_mask``. Validation
    picks the kept weights (training accuracy when there is no validation node); a
    Ctrl-C stops training between steps and keeps the best model so far.
    """
    config = config or FitConfig()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    progress = Progress(config.epochs, enabled=config.progress, log_every=max(1, config.epochs // 10))
    select = data.val_mask if bool(data.val_mask.any()) else data.train_mask
    best, best_state, best_epoch, losses, interrupted = (-1.0, 0.0), None, 0, [], False
    try:
        for epoch in range(1, config.epochs + 1):
            model.train()
            loss = F.cross_entropy(logits_fn()[data.train_mask], data.y[data.train_mask])
            with deferred_interrupt():
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            losses.append(loss.item())
            progress.update(epoch, losses[-1])
            model.eval()
            with torch.no_grad():
                logits = logits_fn()
            # accuracy first, the loss breaks ties (small validation sets saturate early)
            score = (accuracy(logits, data.y, select), -F.cross_entropy(logits[select], data.y[select]).item())
            if score > best:
                best, best_state, best_epoch = score, copy.deepcopy(model.state_dict()), epoch
            elif epoch - best_epoch >= config.patience:
                break
    except KeyboardInterrupt:
        progress.message(f"interrupted at epoch {len(losses)}; keeping the best model so far")
        interrupted = True
    finally:
        progress.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        logits = logits_fn()
    accs = [accuracy(logits, data.y, m) for m in (data.train_mask, data.val_mask, data.test_mask)]
    return FitResult(*accs, best_epoch=best_epoch, losses=losses, interrupted=interrupted)
