"""GATConv / GATv2 against PyTorch Geometric and an fp64 dense formula; HAN's semantic attention.

Tolerances: fp32 outputs and weights 1e-5 (PyG sums in the same order, most cases are exact),
gradients 1e-4 (different summation order in backward), bf16 5e-2.
"""

import pytest
import torch
from torch_geometric.nn import GATConv as PygGATConv
from torch_geometric.nn import GATv2Conv as PygGATv2Conv

from attnlab.attention import GATConv, SemanticAttention
from attnlab.attention.graph import add_self_loops
from attnlab.errors import AttnlabError

PYG = {False: PygGATConv, True: PygGATv2Conv}
_OUR_NAMES = {f"{pyg}.{p}": f"{ours}.{p}" for pyg, ours in (("lin", "lin_src"), ("lin_l", "lin_src"), ("lin_r", "lin_dst")) for p in ("weight", "bias")}


def random_graph(num_nodes=40, num_edges=240, features=12, edge_dim=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_nodes, features, generator=g)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g)  # duplicates and loops too
    edge_attr = torch.randn(num_edges, edge_dim, generator=g) if edge_dim else None
    return x, edge_index, edge_attr


def run_both(pyg, ours, x, edge_index, edge_attr=None):
    """Forward + backward through both layers; returns their outputs, weights and grads."""
    results = []
    for layer, kwargs in ((pyg, {"edge_attr": edge_attr}), (ours, {"edge_attr": edge_attr})):
        xs = [t.clone().requires_grad_() for t in (x if isinstance(x, tuple) else (x,))]
        inputs = tuple(xs) if isinstance(x, tuple) else xs[0]
        out, (ei, alpha) = layer(inputs, edge_index, return_attention_weights=True, **kwargs)
        (out.pow(2).sum() + alpha.pow(2).sum()).backward()
        grads = {f"x{i}": t.grad for i, t in enumerate(xs)}
        grads.update({_OUR_NAMES.get(n, n): p.grad for n, p in layer.named_parameters()})
        results.append((out, ei, alpha, grads))
    return results


def assert_same(results):
    (o1, e1, a1, g1), (o2, e2, a2, g2) = results
    torch.testing.assert_close(o2, o1, atol=1e-5, rtol=1e-5)
    assert torch.equal(e1, e2)
    torch.testing.assert_close(a2, a1, atol=1e-5, rtol=1e-5)
    assert sorted(g1) == sorted(g2)
    for name, grad in g1.items():
        torch.testing.assert_close(g2[name].reshape(grad.shape), grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize(
    "options",
    [
        {"heads": 1},
        {"heads": 4},
        {"heads": 3, "concat": False},
        {"heads": 2, "add_self_loops": False},
        {"heads": 2, "edge_dim": 5},
        {"heads": 2, "edge_dim": 5, "fill_value": 0.5},
        {"heads": 2, "edge_dim": 5, "fill_value": "max"},
        {"heads": 2, "residual": True, "bias": False},
        {"heads": 2, "negative_slope": 0.01},
    ],
)
def test_against_pyg(v2, options):
    torch.manual_seed(1)
    edge_dim = options.get("edge_dim")
    x, edge_index, edge_attr = random_graph(edge_dim=edge_dim)
    pyg = PYG[v2](12, 7, **options)
    results = run_both(pyg, GATConv.from_pyg(pyg), x, edge_index, edge_attr)
    assert_same(results)


def test_against_pyg_gatv2_shared_weights():
    torch.manual_seed(2)
    x, edge_index, _ = random_graph()
    pyg = PygGATv2Conv(12, 6, heads=2, share_weights=True)
    ours = GATConv.from_pyg(pyg)
    assert ours.lin_dst is ours.lin_src
    assert_same(run_both(pyg, ours, x, edge_index))


@pytest.mark.parametrize("v2", [False, True])
def test_against_pyg_bipartite(v2):
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(3)
    x_src, x_dst = torch.randn(30, 10, generator=g), torch.randn(17, 6, generator=g)
    edge_index = torch.stack([torch.randint(0, 30, (90,), generator=g), torch.randint(0, 17, (90,), generator=g)])
    pyg = PYG[v2]((10, 6), 5, heads=3)
    assert_same(run_both(pyg, GATConv.from_pyg(pyg), (x_src, x_dst), edge_index))


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("options", [{"heads": 1}, {"heads": 3}, {"heads": 2, "edge_dim": 4}, {"heads": 2, "add_self_loops": False}])
def test_against_pyg_multigraph(v2, options):
    """Repeated edges (j -> i twice or more, apart in the input order): forward, alpha and
    every gradient equal PyG's (the sparse SDDMM of the backward used to fail on them)."""
    torch.manual_seed(5)
    g = torch.Generator().manual_seed(5)
    edges = torch.randint(0, 25, (2, 80), generator=g)
    small = torch.tensor([[0, 1, 0, 1, 0, 0, 1], [1, 0, 1, 1, 0, 1, 0]])  # 0 -> 1 three times, 1 -> 0 twice
    for edge_index in (small, torch.cat([edges, edges[:, :40], edges[:, 10:20]], dim=1)):
        x = torch.randn(int(edge_index.max()) + 1, 12, generator=g)
        edge_attr = torch.randn(edge_index.size(1), 4, generator=g) if "edge_dim" in options else None
        pyg = PYG[v2](12, 6, **options)
        assert_same(run_both(pyg, GATConv.from_pyg(pyg), x, edge_index, edge_attr))


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("add_self_loops", [True, False])
def test_against_pyg_bipartite_with_size(v2, add_self_loops):
    """PyG's bipartite call ``conv((x_src, x_dst), edge_index, size=(N_src, N_dst))``."""
    torch.manual_seed(6)
    g = torch.Generator().manual_seed(6)
    x_src, x_dst = torch.randn(9, 10, generator=g), torch.randn(4, 6, generator=g)
    edge_index = torch.stack([torch.randint(0, 9, (30,), generator=g), torch.randint(0, 4, (30,), generator=g)])
    pyg = PYG[v2]((10, 6), 5, heads=2, add_self_loops=add_self_loops)
    ours = GATConv.from_pyg(pyg)
    want, (want_edges, want_alpha) = pyg((x_src, x_dst), edge_index, return_attention_weights=True,
                                         **({} if v2 else {"size": (9, 4)}))
    got, (edges, alpha) = ours((x_src, x_dst), edge_index, return_attention_weights=True, size=(9, 4))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert torch.equal(edges, want_edges)
    torch.testing.assert_close(alpha, want_alpha, atol=1e-5, rtol=1e-5)
    assert_same(run_both(pyg, ours, (x_src, x_dst), edge_index))


@pytest.mark.parametrize("add_self_loops", [True, False])
def test_against_pyg_source_features_only(add_self_loops):
    """GAT's ``conv((x_src, None), edge_index, size=(N_src, N_dst))``: no destination term."""
    torch.manual_seed(7)
    g = torch.Generator().manual_seed(7)
    x_src = torch.randn(9, 10, generator=g)
    edge_index = torch.stack([torch.randint(0, 9, (30,), generator=g), torch.randint(0, 4, (30,), generator=g)])
    pyg = PygGATConv((10, 6), 5, heads=2, add_self_loops=add_self_loops)
    ours = GATConv.from_pyg(pyg)
    results = []
    for layer in (pyg, ours):
        leaf = x_src.clone().requires_grad_()
        out, (edges, alpha) = layer((leaf, None), edge_index, return_attention_weights=True, size=(9, 4))
        (out.pow(2).sum() + alpha.pow(2).sum()).backward()
        results.append((out, edges, alpha, {"x0": leaf.grad, **{_OUR_NAMES.get(n, n): p.grad for n, p in layer.named_parameters() if p.grad is not None}}))
    assert results[1][0].shape == (4, 10)
    assert_same(results)


def test_size_errors():
    conv = GATConv((10, 6), 5)
    x_src, x_dst = torch.randn(9, 10), torch.randn(4, 6)
    edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(AttnlabError, match="size"):
        conv((x_src, x_dst), edge_index, size=(9, 5))
    with pytest.raises(AttnlabError, match="needs size"):
        conv((x_src, None), edge_index)
    with pytest.raises(AttnlabError, match="GATv2 needs destination"):
        GATConv((10, 6), 5, v2=True)((x_src, None), edge_index, size=(9, 4))
    with pytest.raises(AttnlabError, match="floating"):
        GATConv(3, 2)(torch.ones(4, 3, dtype=torch.long), edge_index)
    with pytest.raises(AttnlabError, match="layer's dtype"):
        GATConv(3, 2)(torch.ones(4, 3, dtype=torch.float64), edge_index)


@pytest.mark.parametrize("v2", [False, True])
def test_isolated_nodes_are_finite_and_match_pyg(v2):
    torch.manual_seed(4)
    x = torch.randn(10, 8)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 1]])  # nodes 0 and 4..9 receive nothing
    pyg = PYG[v2](8, 4, heads=2, add_self_loops=False)
    torch.nn.init.normal_(pyg.bias)
    ours = GATConv.from_pyg(pyg)
    results = run_both(pyg, ours, x, edge_index)
    assert_same(results)
    out = results[1][0]
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[4:], ours.bias.expand(6, -1))


def dense_reference(layer: GATConv, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """GAT's formula in fp64 with a dense (N, N) masked softmax; one edge per (j, i) pair."""
    n, H, C = x.size(0), layer.heads, layer.out_dim
    h = (x.double() @ layer.lin_src.weight.double().t()).view(n, H, C)
    e = (h * layer.att_dst.double()).sum(-1)[:, None, :] + (h * layer.att_src.double()).sum(-1)[None, :, :]
    e = torch.nn.functional.leaky_relu(e, layer.negative_slope)  # (N_i, N_j, H)
    allowed = torch.eye(n, dtype=torch.bool)
    allowed[edge_index[1], edge_index[0]] = True
    alpha = torch.softmax(e.masked_fill(~allowed[..., None], float("-inf")), dim=1)
    return torch.einsum("ijh,jhc->ihc", alpha, h).reshape(n, H * C) + layer.bias.double()


def test_fp64_formula_and_weights_sum_to_one():
    torch.manual_seed(5)
    n = 25
    pairs = torch.randperm(n * n)[:120]
    edge_index = torch.stack([pairs // n, pairs % n])  # distinct (j, i) pairs
    layer = GATConv(9, 4, heads=3).double()
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(n, 9, dtype=torch.float64)
    out, (ei, alpha) = layer(x, edge_index, return_attention_weights=True)
    torch.testing.assert_close(out, dense_reference(layer, x, edge_index), atol=1e-10, rtol=1e-10)
    sums = torch.zeros(n, 3, dtype=torch.float64).index_add_(0, ei[1], alpha)
    torch.testing.assert_close(sums, torch.ones_like(sums), atol=1e-12, rtol=0)


@pytest.mark.parametrize("v2", [False, True])
def test_relabelling_nodes_permutes_the_output(v2):
    torch.manual_seed(6)
    x, edge_index, edge_attr = random_graph(edge_dim=3)
    layer = GATConv(12, 5, heads=2, v2=v2, edge_dim=3)
    perm = torch.randperm(x.size(0))  # new id of old node k is inverse[k]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    out = layer(x, edge_index, edge_attr=edge_attr)
    out_relabelled = layer(x[perm], inverse[edge_index], edge_attr=edge_attr)
    torch.testing.assert_close(out_relabelled, out[perm], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("v2", [False, True])
def test_empty_graphs(v2):
    layer = GATConv(6, 4, heads=2, v2=v2)
    no_nodes = layer(torch.randn(0, 6), torch.empty(2, 0, dtype=torch.long))
    assert no_nodes.shape == (0, 8)
    no_edges = GATConv(6, 4, heads=2, v2=v2, add_self_loops=False, concat=False)
    out, (ei, alpha) = no_edges(torch.randn(5, 6), torch.empty(2, 0, dtype=torch.long), True)
    assert out.shape == (5, 4) and alpha.shape == (0, 2) and ei.shape == (2, 0)
    torch.testing.assert_close(out, no_edges.bias.expand(5, -1))


def test_dropout_only_in_training():
    torch.manual_seed(7)
    x, edge_index, _ = random_graph()
    layer = GATConv(12, 4, heads=2, dropout=0.5)
    _, (_, alpha_train) = layer(x, edge_index, True)
    assert (alpha_train == 0).float().mean() > 0.3
    layer.eval()
    _, (ei, alpha_eval) = layer(x, edge_index, True)
    sums = torch.zeros(x.size(0), 2).index_add_(0, ei[1], alpha_eval)
    torch.testing.assert_close(sums, torch.ones_like(sums), atol=1e-5, rtol=0)


def test_bfloat16_follows_the_input_dtype():
    torch.manual_seed(8)
    x, edge_index, _ = random_graph()
    layer = GATConv(12, 8, heads=4)
    expected = layer(x, edge_index)
    out = layer.to(torch.bfloat16)(x.bfloat16(), edge_index)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=5e-2, rtol=5e-2)


def test_add_self_loops_mean_fill_matches_formula():
    edge_index = torch.tensor([[0, 1, 2, 2], [1, 1, 1, 0]])
    edge_attr = torch.tensor([[1.0], [100.0], [3.0], [5.0]])
    ei, ea = add_self_loops(edge_index, 3, edge_attr, "mean")
    assert ei.tolist() == [[0, 2, 2, 0, 1, 2], [1, 1, 0, 0, 1, 2]]
    assert ea.flatten().tolist() == [1.0, 3.0, 5.0, 5.0, 2.0, 0.0]  # node 2 has no incoming edge


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m(torch.randn(5, 6), torch.tensor([[0, 1], [1, 9]])), "node ids"),
        (lambda m: m(torch.randn(5, 6), torch.tensor([0, 1])), "edge_index must be a \\(2, E\\)"),
        (lambda m: m(torch.randn(5, 7), torch.tensor([[0], [1]])), "x_src must be"),
        (lambda m: m(torch.randn(5, 6), torch.tensor([[0.0], [1.0]])), "integer"),
        (lambda m: m(torch.randn(5, 6), torch.tensor([[0], [1]]), torch.ones(1, 1)), "edge_attr="),
    ],
)
def test_clear_errors(call, message):
    with pytest.raises(AttnlabError, match=message):
        call(GATConv(6, 4))


def test_bad_arguments():
    with pytest.raises(AttnlabError, match="heads"):
        GATConv(6, 4, heads=0)
    with pytest.raises(AttnlabError, match="fill_value"):
        GATConv(6, 4, edge_dim=2, fill_value="median")
    with pytest.raises(AttnlabError, match="GATConv or GATv2Conv"):
        GATConv.from_pyg(torch.nn.Linear(2, 2))


def test_semantic_attention_weights_sum_to_one():
    torch.manual_seed(9)
    layer = SemanticAttention(dim=6, hidden_dim=5)
    z = torch.randn(11, 3, 6)
    out, beta = layer(z)
    torch.testing.assert_close(beta.sum(), torch.tensor(1.0))
    W, b, q = (t.detach().double() for t in (layer.project.weight, layer.project.bias, layer.query))
    w = (torch.tanh(z.double() @ W.t() + b) @ q).mean(0)  # (P,) the paper's w_p
    torch.testing.assert_close(beta.double(), torch.softmax(w, 0), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out, (beta[None, :, None] * z).sum(1), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("v2", [False, True])
@pytest.mark.parametrize("fill_value", ["max", "min", "mean", "add", "mul", 0.5])
def test_edge_feature_gradients_against_pyg_in_fp64(v2, fill_value):
    """The gradients of ``edge_attr`` through the added loops' fill (a max/min picks one
    edge's feature, ties share the gradient), in fp64 against PyG: ties (rounded features),
    repeated edges, self-loops in the input (dropped) and nodes without incoming edges (a
    zero fill). Every gradient finite and within 1e-12 (relative)."""
    g = torch.Generator().manual_seed(7)
    edge_index = torch.randint(0, 20, (2, 90), generator=g)
    edge_index = torch.cat([edge_index[:, edge_index[1] < 17], edge_index[:, :10], torch.tensor([[3, 5], [3, 5]])], 1)
    x = torch.randn(20, 6, generator=g, dtype=torch.float64)
    edge_attr = (torch.randn(edge_index.size(1), 3, generator=g, dtype=torch.float64) * 2).round()  # many ties
    torch.manual_seed(7)
    pyg = PYG[v2](6, 4, heads=2, edge_dim=3, fill_value=fill_value).double()
    ours = GATConv.from_pyg(pyg).double()
    grads = []
    for layer in (pyg, ours):
        xs, attrs = x.clone().requires_grad_(), edge_attr.clone().requires_grad_()
        out, (_, alpha) = layer(xs, edge_index, edge_attr=attrs, return_attention_weights=True)
        (out.pow(2).sum() + alpha.pow(2).sum()).backward()
        grads.append((out.detach(), alpha.detach(), xs.grad, attrs.grad))
    for theirs, mine in zip(*grads):
        assert torch.isfinite(mine).all()
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
