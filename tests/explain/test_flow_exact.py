"""Attention flow is exact: every unit's value equals networkx's preflow-push maximum flow on
a graph built here from the same integer capacities (one fresh graph per unit), on dense
and sparse (unreached nodes) layers, with and without a translator's extra query node."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from attnlab.explain.explainable import Explainable
from attnlab.explain.flow import SCALE, flow
from attnlab.explain.rollout import mixed_layers

L = 9


def reference_graph(layers: list[torch.Tensor], query: int) -> nx.DiGraph:
    """The layered graph of the edges that reach (N, q), capacities round(Â 1e6), written
    node by node (the implementation before the compiled solver)."""
    graph, alive = nx.DiGraph(), {query}
    for level in range(len(layers), 0, -1):
        a, below = layers[level - 1], set()
        for i in alive:
            for j in torch.nonzero(a[i] > 0).flatten().tolist():
                graph.add_edge((level - 1, j), (level, i), capacity=int(round(float(a[i, j]) * SCALE)))
                below.add(j)
        alive = below
    return graph


def explainable(maps: list[torch.Tensor], units: int, query: int, residual: list[bool]) -> Explainable:
    def run(e: torch.Tensor, need_weights: bool):
        return e.sum((1, 2)), maps if need_weights else []

    inputs = torch.randn(units, 4, dtype=torch.float64)
    return Explainable(inputs, torch.zeros_like(inputs), run, [str(i) for i in range(units)], "t", query,
                       torch.arange(units), residual, "zeros")


@pytest.mark.parametrize("sparsity", [0.0, 0.6])
@pytest.mark.parametrize("query_node", [False, True])  # a translator: the query is node L, not a unit
def test_each_units_flow_equals_networkx(sparsity, query_node):
    gen = torch.Generator().manual_seed(0)
    m = L + int(query_node)
    maps = []
    for _ in range(3):
        a = torch.softmax(torch.randn(1, 2, m, m, generator=gen, dtype=torch.float64) * 3, -1)
        maps.append(a * (torch.rand(1, 1, m, m, generator=gen, dtype=torch.float64) >= sparsity))
    residual = [True, True, False]
    x = explainable(maps, L, m - 1, residual)
    graph, sink = reference_graph(mixed_layers(x), x.query), (3, m - 1)
    want = [nx.maximum_flow_value(graph, (0, j), sink) / SCALE if (0, j) in graph else 0.0 for j in range(L)]
    assert flow(x).tolist() == want and len(set(want)) > 2
