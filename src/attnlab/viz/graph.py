"""Graph attention drawn on the graph: edge width and colour by attention weight.

For an undirected drawing the two directions of an edge are merged: the edge {i, j}
shows max(alpha_ij, alpha_ji) averaged over heads, so an edge is drawn thick when either
end attends strongly to the other. A node's size shows its self-attention (the weight
on its own self-loop), its colour its class. Uses matplotlib's Agg backend (no display).

Shapes: edge_index (2, E) row 0 source j, row 1 destination i; alpha (E, H) or (E,).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from attnlab.errors import AttnlabError  # noqa: E402
from attnlab.io import atomic_write  # noqa: E402


def undirected_attention(edge_index: Tensor, alpha: Tensor, num_nodes: int) -> tuple[dict, Tensor]:
    """{(i, j) with i < j: weight} merged over directions and heads, and self-attention (N,)."""
    if alpha.dim() == 2:
        alpha = alpha.mean(dim=1)  # (E,)
    if alpha.shape != edge_index[0].shape:
        raise AttnlabError(f"alpha must have one row per edge ({edge_index.size(1)}), got {tuple(alpha.shape)}")
    alpha = alpha.detach().float().cpu()
    src, dst = edge_index.cpu()
    loops = src == dst
    self_attention = torch.zeros(num_nodes).index_put_((dst[loops],), alpha[loops])
    weights: dict[tuple[int, int], float] = {}
    for j, i, a in zip(src[~loops].tolist(), dst[~loops].tolist(), alpha[~loops].tolist()):
        key = (min(i, j), max(i, j))
        weights[key] = max(weights.get(key, 0.0), a)
    return weights, self_attention


def draw_graph_attention(
    edge_index: Tensor,
    alpha: Tensor,
    num_nodes: int,
    labels: Tensor | None = None,
    node_names: list[str] | None = None,
    class_names: list[str] | None = None,
    path: str | Path | None = None,
    title: str = "graph attention",
    seed: int = 0,
):
    """Draw the graph with edges weighted by attention; save a PNG when ``path`` is given.

    Returns the matplotlib Figure (closed after saving when ``path`` is given).
    """
    weights, self_attention = undirected_attention(edge_index, alpha, num_nodes)
    graph = nx.Graph()
    graph.add_nodes_from(range(num_nodes))
    graph.add_edges_from(weights)
    positions = nx.spring_layout(graph, seed=seed)
    fig, ax = plt.subplots(figsize=(8, 7))
    edges = list(weights)
    values = torch.tensor([weights[e] for e in edges]) if edges else torch.zeros(0)
    scale = float(values.max()) if values.numel() else 1.0
    drawn = nx.draw_networkx_edges(
        graph, positions, edgelist=edges, ax=ax, width=(0.3 + 4.0 * values / scale).tolist(),
        edge_color=values.tolist(), edge_cmap=plt.cm.viridis, edge_vmin=0.0, edge_vmax=scale,
    )
    classes = labels.cpu().tolist() if labels is not None else [-1] * num_nodes
    node_colour = [plt.cm.Set2(c % 8) if c >= 0 else "lightgrey" for c in classes]
    nx.draw_networkx_nodes(
        graph, positions, ax=ax, node_size=(60 + 500 * self_attention).tolist(), node_color=node_colour,
        edgecolors="black", linewidths=0.5,
    )
    if node_names and num_nodes <= 60:
        nx.draw_networkx_labels(graph, positions, {i: n for i, n in enumerate(node_names)}, ax=ax, font_size=7)
    if edges:
        fig.colorbar(drawn, ax=ax, label="attention weight (max over directions, mean over heads)")
    if labels is not None and class_names:
        handles = [
            plt.Line2D([], [], marker="o", linestyle="", color=plt.cm.Set2(c % 8), label=name)
            for c, name in enumerate(class_names)
        ]
        ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.set_title(f"{title}\nnode size: self-attention")
    ax.axis("off")
    if path is not None:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
        plt.close(fig)
    return fig
