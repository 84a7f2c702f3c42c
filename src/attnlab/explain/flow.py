"""Attention flow (Abnar & Zuidema 2020): the maximum flow from each input unit to the
prediction through the layered attention graph.

Nodes are (layer l, position i) for l = 0..N; an edge (l, j) -> (l + 1, i) has the
capacity Â_l[i, j] of attention rollout's mixed layers (heads averaged, 0.5 I on residual
layers). The attribution of unit j is the value of a maximum flow from (0, u_j) to (N, q):

    a_j = maxflow_{Â}((0, u_j) -> (N, q))

Solved with networkx's ``maximum_flow_value`` (preflow-push) on capacities scaled to
integers (1e6 = 1), after dropping the nodes that cannot reach (N, q); the residual network
is built once and reset by each of the L flows (half their time on a translator's graphs).
Cost: L flows, each O(V^2 sqrt(E)) with V = (N + 1) M nodes and E <= N M^2 edges — seconds
for tens of tokens, hours for 512; :data:`MAX_EDGES` bounds it (:class:`TooLarge` above).
"""

from __future__ import annotations

import networkx as nx
import torch
from networkx.algorithms.flow import build_residual_network, preflow_push
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.explain.explainable import Explainable
from attnlab.explain.rollout import mixed_layers

SCALE = 10**6
MAX_EDGES = 60_000  # edges that reach the prediction; above, flow is skipped


class TooLarge(AttnlabError):
    """The input is too large for this method (it says which bound)."""


def reaching_edges(layers: list[Tensor], query: int) -> int:
    """How many edges reach (N, q): counted on tensors, before any graph is built."""
    alive = torch.zeros(layers[-1].shape[-1], dtype=torch.bool, device=layers[-1].device)
    alive[query], total = True, 0
    for a in reversed(layers):
        live = a[alive] > 0  # (alive rows, M): the edges into the live nodes
        total += int(live.sum())
        alive = live.any(dim=0)
    return total


def layer_graph(layers: list[Tensor], query: int) -> nx.DiGraph:
    """The edges that reach (N, q), capacities scaled to integers."""
    if reaching_edges(layers, query) > MAX_EDGES:
        raise TooLarge(f"attention flow: more than {MAX_EDGES} edges reach the prediction; give a shorter input")
    graph, alive = nx.DiGraph(), {query}
    for level in range(len(layers), 0, -1):  # from the top down: who feeds the live nodes
        a = layers[level - 1]
        below = set()
        for i in alive:
            for j in torch.nonzero(a[i] > 0).flatten().tolist():
                graph.add_edge((level - 1, j), (level, i), capacity=int(round(float(a[i, j]) * SCALE)))
                below.add(j)
        alive = below
    return graph


def flow(x: Explainable) -> Tensor:
    """``(L,)``: the maximum flow from each unit to the query (0 where none reaches it)."""
    layers = mixed_layers(x)
    graph, sink = layer_graph(layers, x.query), (len(layers), x.query)
    residual = build_residual_network(graph, "capacity")  # preflow-push resets its flows on each call
    values = []
    for j in x.units.tolist():
        source = (0, j)
        if source in graph:
            values.append(nx.maximum_flow_value(graph, source, sink, flow_func=preflow_push, residual=residual) / SCALE)
        else:
            values.append(0.0)
    return torch.tensor(values, dtype=torch.float64)
