"""Attention flow builds the residual network once for all units: every unit's value equals
a maximum flow computed on a fresh network (integer capacities: exactly)."""

from __future__ import annotations

import networkx as nx
import torch

from attnlab.explain.explainable import Explainable
from attnlab.explain.flow import SCALE, flow, layer_graph
from attnlab.explain.rollout import mixed_layers

L = 9


def test_each_units_flow_equals_a_fresh_maximum_flow():
    gen = torch.Generator().manual_seed(0)
    maps = [torch.softmax(torch.randn(1, 2, L, L, generator=gen, dtype=torch.float64) * 3, -1) for _ in range(3)]

    def run(e: torch.Tensor, need_weights: bool):
        return e.sum((1, 2)), maps if need_weights else []

    inputs = torch.randn(L, 4, generator=gen, dtype=torch.float64)
    x = Explainable(inputs, torch.zeros_like(inputs), run, [str(i) for i in range(L)], "t", L - 1, torch.arange(L),
                    [True, True, True], "zeros")
    graph = layer_graph(mixed_layers(x), x.query)
    want = [nx.maximum_flow_value(graph, (0, j), (3, L - 1)) / SCALE for j in range(L)]
    assert flow(x).tolist() == want and len(set(want)) > 1
