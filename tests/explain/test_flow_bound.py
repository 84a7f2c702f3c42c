"""Attention flow's size bound is checked on tensors before the graph is built: the count
equals the edges of the graph (the reference graph written node by node, and the one the
solver gets), and an input over the bound raises TooLarge."""

from __future__ import annotations

import pytest
import torch
from tests.explain.test_flow_exact import reference_graph

from attnlab.explain import flow as flow_module
from attnlab.explain.flow import TooLarge, layered_edges, network, reaching_edges


def sparse_layers(m: int = 9, n: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    layers = []
    for _ in range(n):
        a = torch.rand(m, m, generator=gen) * (torch.rand(m, m, generator=gen) < 0.3)  # some zeros: unreached nodes
        layers.append(a / a.sum(-1, keepdim=True).clamp_min(1e-9))
    return layers


def test_the_count_equals_the_graph_built():
    layers = sparse_layers()
    for query in range(9):
        graph = reference_graph(layers, query)
        assert reaching_edges(layers, query) == graph.number_of_edges() == len(layered_edges(layers, query))
        assert network(layers, query).nnz == sum(1 for *_, c in graph.edges(data="capacity") if c > 0)


def test_over_the_bound_raises(monkeypatch):
    layers = sparse_layers()
    count = reaching_edges(layers, 4)
    monkeypatch.setattr(flow_module, "MAX_EDGES", count - 1)
    with pytest.raises(TooLarge):
        network(layers, 4)
    monkeypatch.setattr(flow_module, "MAX_EDGES", count)
    assert network(layers, 4).nnz > 0
