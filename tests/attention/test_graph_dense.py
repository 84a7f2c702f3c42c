"""GATConv over a dense adjacency equals GATConv over the same edges and PyTorch Geometric's
GATConv / GATv2Conv in fp64 (outputs, attention weights, gradients; 1e-12), in every variant
the ONNX export of GAT and HAN computes, on graphs with repeated edges, input self-loops
and nodes without incoming edges."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GATConv as PygGATConv
from torch_geometric.nn import GATv2Conv as PygGATv2Conv

from attnlab.attention import GATConv
from attnlab.attention.graph_dense import dense_adjacency
from attnlab.errors import AttnlabError
from attnlab.models import GAT, HAN
from attnlab.models.gat import GATConfig, HANConfig

TOL = dict(atol=1e-12, rtol=1e-12)
RENAMES = {f"{pyg}.{p}": f"{ours}.{p}" for pyg, ours in (("lin", "lin_src"), ("lin_l", "lin_src"), ("lin_r", "lin_dst"))
           for p in ("weight", "bias")}
VARIANTS = [
    dict(heads=1), dict(heads=3), dict(heads=3, concat=False), dict(heads=2, add_self_loops=False),
    dict(heads=3, residual=True), dict(heads=3, residual=True, concat=False), dict(heads=2, bias=False),
    dict(heads=2, negative_slope=0.01),
]


def graph(nodes=15, edges=50, features=5, seed=0):
    """Random edges with repeats and self-loops; the last node has no incoming edge."""
    g = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, nodes - 1, (2, edges), generator=g)
    edge_index = torch.cat([edge_index, edge_index[:, :5]], dim=1)  # five repeated edges
    return torch.randn(nodes, features, generator=g, dtype=torch.float64), edge_index


def layers(v2: bool, options: dict):
    """Ours and PyG's with the same random weights (biases too), fp64."""
    options = {**options, "share_weights": True} if v2 and options.get("residual") else options
    pyg = {False: PygGATConv, True: PygGATv2Conv}[v2](5, 4, **options)
    with torch.no_grad():
        for p in pyg.parameters():
            p.normal_()
    return GATConv.from_pyg(pyg).double(), pyg.double()  # copied in fp32 (from_pyg's layer), then both fp64


def run(layer, x, edges):
    """Output, the weights as a dense (N_dst, N_src, H) sum per pair, and every gradient."""
    x = x.clone().requires_grad_()
    out, (edge_index, alpha) = layer(x, edges, return_attention_weights=True)
    n, heads = x.shape[0], alpha.shape[1]
    pairs = torch.zeros(n, n, heads, dtype=alpha.dtype).index_put((edge_index[1], edge_index[0]), alpha, accumulate=True)
    (out.pow(2).sum() + pairs.pow(2).sum()).backward()  # a loss that reads every pair's weight
    grads = {RENAMES.get(name, name): p.grad for name, p in layer.named_parameters()}
    return out.detach(), pairs.detach(), {"x": x.grad, **grads}


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("options", VARIANTS)
def test_dense_equals_the_edge_list_and_pyg_in_fp64(v2, options):
    x, edge_index = graph()
    ours, pyg = layers(v2, options)
    dense = run(ours, x, dense_adjacency(edge_index, x.shape[0], torch.float64))
    ours.zero_grad()
    for reference in (run(ours, x, edge_index), run(pyg, x, edge_index)):
        torch.testing.assert_close(dense[0], reference[0], **TOL)
        torch.testing.assert_close(dense[1], reference[1], **TOL)
        assert sorted(dense[2]) == sorted(reference[2])
        for name, expected in reference[2].items():
            torch.testing.assert_close(dense[2][name].reshape(expected.shape), expected, **TOL)
        ours.zero_grad()
        pyg.zero_grad()


@pytest.mark.parametrize("v2", [False, True])
def test_bool_adjacency_counts_each_pair_once(v2):
    x, edge_index = graph()
    ours, _ = layers(v2, dict(heads=2))
    distinct = edge_index.unique(dim=1)
    expected = ours(x, distinct)
    torch.testing.assert_close(ours(x, dense_adjacency(edge_index, x.shape[0], torch.bool)), expected, **TOL)


def test_isolated_node_gets_zero_attention_and_finite_gradients():
    x, edge_index = graph()
    conv = GATConv(5, 4, heads=2, add_self_loops=False, bias=False).double()
    x.requires_grad_()
    out = conv(x, dense_adjacency(edge_index, x.shape[0], torch.float64))
    out.sum().backward()
    assert torch.equal(out[-1], torch.zeros_like(out[-1]))
    assert torch.isfinite(x.grad).all()


def test_bipartite_and_source_features_only():
    g = torch.Generator().manual_seed(3)
    x_src, x_dst = torch.randn(9, 5, dtype=torch.float64, generator=g), torch.randn(6, 5, dtype=torch.float64, generator=g)
    edge_index = torch.stack([torch.randint(0, 9, (30,), generator=g), torch.randint(0, 6, (30,), generator=g)])
    adjacency = dense_adjacency(edge_index, (9, 6), torch.float64)
    for v2 in (False, True):
        conv = GATConv((5, 5), 4, heads=2, v2=v2).double()
        torch.testing.assert_close(conv((x_src, x_dst), adjacency), conv((x_src, x_dst), edge_index), **TOL)
    conv = GATConv((5, 5), 4, heads=2).double()
    torch.testing.assert_close(conv((x_src, None), adjacency, size=(9, 6)), conv((x_src, None), edge_index, size=(9, 6)), **TOL)


def test_models_take_adjacencies_in_place_of_edge_lists():
    x, edge_index = graph(features=6)
    gat = GAT(GATConfig(in_dim=6, num_classes=3, hidden_dim=4, heads=2, dropout=0.0, v2=True)).double().eval()
    adjacency = dense_adjacency(edge_index, x.shape[0], torch.float64)
    torch.testing.assert_close(gat(x, adjacency).logits, gat(x, edge_index).logits, **TOL)
    han = HAN(HANConfig(in_dim=6, num_classes=3, num_metapaths=2, hidden_dim=4, heads=2, dropout=0.0)).double().eval()
    expected = han(x, [edge_index, edge_index[:, ::2]])
    got = han(x, [adjacency, dense_adjacency(edge_index[:, ::2], x.shape[0], torch.float64)])
    torch.testing.assert_close(got.logits, expected.logits, **TOL)
    torch.testing.assert_close(got.semantic_weights, expected.semantic_weights, **TOL)


@pytest.mark.parametrize("adjacency, kwargs, message", [
    (torch.ones(4, 5), {}, r"adjacency must be \(N_dst, N_src\) = \(4, 4\), got \(4, 5\)"),
    (-torch.ones(4, 4), {}, "values >= 0"),
    (torch.ones(4, 4), {"edge_attr": torch.ones(16, 3)}, "edge_attr needs an edge_index"),
])
def test_clear_errors(adjacency, kwargs, message):
    conv = GATConv(5, 2, edge_dim=3)
    with pytest.raises(AttnlabError, match=message):
        conv(torch.randn(4, 5), adjacency, **kwargs)
