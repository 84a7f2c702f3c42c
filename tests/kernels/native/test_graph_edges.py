"""graph_edges.c — GAT's weighted sum over CSR rows and its per-edge dots — against the fp64
formula and against the sparse-product path it replaces (ATTNLAB_NATIVE=0), with repeated
edges, isolated nodes and enough edges to be split between two threads.

Tolerances: fp32 sums of <= ~40 terms of O(1) values: 2e-5 from fp64, and no further from
fp64 than 2x the sparse path's own distance (+1e-6)."""

from __future__ import annotations

import shutil

import pytest
import torch

from attnlab.attention.scatter import neighbour_sum, sort_by_destination
from attnlab.kernels.native import graph_edges

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="the C kernels need a C compiler")


def _graph(num_src=300, num_dst=200, edges=6000, heads=3, width=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.stack([torch.randint(0, num_src, (edges,), generator=g),
                              torch.randint(0, num_dst - 10, (edges,), generator=g)])  # the last 10 isolated
    edge_index = torch.cat([edge_index, edge_index[:, :500]], dim=1)  # 500 repeated edges
    graph = sort_by_destination(edge_index, num_src, num_dst)
    alpha = torch.rand(graph.num_edges, heads, generator=g)
    x = torch.randn(num_src, heads, width, generator=g)
    grad = torch.randn(num_dst, heads, width, generator=g)
    return graph, alpha, x, grad


def _fp64(graph, alpha, x, grad):
    """out_i = sum_{e into i} alpha_e x_src(e); dalpha_e = <grad_dst(e), x_src(e)>; dx_j = sum_{e from j} alpha_e grad_dst(e)."""
    a, xs, gr = alpha.double(), x.double(), grad.double()
    messages = a[:, :, None] * xs[graph.src]  # (E, H, C)
    out = torch.zeros(graph.num_dst, *x.shape[1:], dtype=torch.float64).index_add_(0, graph.dst, messages)
    d_alpha = (gr[graph.dst] * xs[graph.src]).sum(-1)
    d_x = torch.zeros_like(xs).index_add_(0, graph.src, a[:, :, None] * gr[graph.dst])
    return out, d_alpha, d_x


def _run(graph, alpha, x, grad):
    alpha, x = alpha.clone().requires_grad_(), x.clone().requires_grad_()
    out = neighbour_sum(alpha, x, graph)
    out.backward(grad)
    return out, alpha.grad, x.grad, type(out.grad_fn).__name__


@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_match_fp64_and_the_sparse_path(threads, monkeypatch):
    graph, alpha, x, grad = _graph()
    assert graph.has_duplicates()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert graph_edges.applies(x)
        native = _run(graph, alpha, x, grad)
        monkeypatch.setenv("ATTNLAB_NATIVE", "0")
        assert not graph_edges.applies(x)
        sparse = _run(graph, alpha, x, grad)
    finally:
        torch.set_num_threads(previous)
    reference = _fp64(graph, alpha, x, grad)
    for ours, theirs, exact in zip(native[:3], sparse[:3], reference, strict=True):
        assert ours.dtype == torch.float32
        ours_err = (ours.double() - exact).abs().max()
        assert ours_err <= 2e-5
        assert ours_err <= 2 * (theirs.double() - exact).abs().max() + 1e-6
    assert torch.equal(native[0][-10:], torch.zeros_like(native[0][-10:]))  # isolated destinations: zero


def test_kernels_directly_on_a_hand_made_graph():
    # edges (src -> dst): 0->1, 2->1, 0->1 (repeated), 1->0; two heads of two channels
    graph = sort_by_destination(torch.tensor([[0, 2, 0, 1], [1, 1, 1, 0]]), 3, 3)
    x = torch.arange(12, dtype=torch.float32).view(3, 2, 2)
    alpha = torch.tensor([[1.0, 2.0], [0.5, 0.0], [1.0, 1.0], [0.25, 3.0]])  # in sorted order: 1->0 first
    out = graph_edges.weighted_sum(graph.ptr, graph.src, alpha, x)
    expected = torch.zeros(3, 2, 2)
    for e in range(4):
        expected[graph.dst[e]] += alpha[e][:, None] * x[graph.src[e]]
    assert torch.equal(out, expected)
    dots = graph_edges.edge_dots(graph.dst, graph.src, out, x)
    assert torch.equal(dots, (out[graph.dst] * x[graph.src]).sum(-1))


def test_fp64_keeps_the_sparse_path():
    graph, alpha, x, grad = _graph(edges=300)
    assert not graph_edges.applies(x.double())
    got = _run(graph, alpha.double(), x.double(), grad.double())
    for ours, exact in zip(got[:3], _fp64(graph, alpha, x, grad), strict=True):
        assert ours.dtype == torch.float64
        torch.testing.assert_close(ours, exact, rtol=1e-12, atol=1e-12)
