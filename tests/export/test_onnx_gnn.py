"""Graph attention in ONNX: HAN's export equals the PyTorch model on graphs of sizes the
export never saw (fp32, 1e-4 absolute), and the dense layer the GAT and HAN graphs share
equals attnlab's sparse GATConv in every variant it computes (GAT's own export is tested
in test_onnx.py)."""

from __future__ import annotations

import pytest
import torch

from attnlab.attention.graph import GATConv
from attnlab.errors import AttnlabError
from attnlab.export.gnn import adjacency, dense_gat_conv, gat_graphs
from attnlab.models import GAT, HAN
from attnlab.models.gat import GATConfig, HANConfig

ATOL = 1e-4


def _graph(nodes: int, edges: int) -> torch.Tensor:
    """Random edges without self-loops or duplicates (dense attention counts a duplicate once)."""
    edge_index = torch.randint(0, nodes, (2, edges))
    return edge_index[:, edge_index[0] != edge_index[1]].unique(dim=1)


@pytest.mark.parametrize("options", [
    dict(), dict(v2=True), dict(residual=True), dict(residual=True, concat=False),
    dict(add_self_loops=False), dict(v2=True, share_weights=True, residual=True),
])
def test_dense_layer_equals_the_sparse_gatconv(options):
    torch.manual_seed(0)
    conv = GATConv(5, 4, heads=3, **options).eval()
    with torch.no_grad():
        if conv.bias is not None:
            conv.bias.normal_()
        for name in ("lin_src", "lin_dst"):
            if getattr(conv, name).bias is not None:
                getattr(conv, name).bias.normal_()
        x, edge_index = torch.randn(17, 5), _graph(17, 50)
        expected = conv(x, edge_index)
        got = dense_gat_conv(conv, x, adjacency(edge_index, 17))
    assert (got - expected).abs().max() < ATOL


def test_edge_features_are_refused_with_the_reason():
    model = GAT(GATConfig(in_dim=4, num_classes=2, hidden_dim=2, heads=2))
    model.convs[0] = GATConv(4, 2, heads=2, edge_dim=3)
    with pytest.raises(AttnlabError, match="edge features or bipartite inputs are not exported"):
        gat_graphs(model)


pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def han(tmp_path_factory):
    from attnlab.export import export_onnx, load_runtime

    torch.manual_seed(0)
    model = HAN(HANConfig(in_dim=6, num_classes=3, num_metapaths=3, hidden_dim=4, heads=2, semantic_dim=8, dropout=0.0))
    ckpt = tmp_path_factory.mktemp("han_ckpt")
    model.save_pretrained(ckpt)
    rt = load_runtime(export_onnx(ckpt, tmp_path_factory.mktemp("han") / "onnx"))
    assert rt.manifest["graphs"]["model"]["exporter"] == "dynamo", rt.manifest["graphs"]["model"].get("fallback_reason")
    return model.eval(), rt


@pytest.mark.parametrize("nodes, edges", [(4, 6), (29, 90)])
def test_han_equals_pytorch_on_graphs_of_other_sizes(han, nodes, edges):
    model, rt = han
    x = torch.randn(nodes, 6)
    metapaths = [_graph(nodes, edges // (p + 1)) for p in range(3)]  # each meta-path its own edge count
    with torch.no_grad():
        expected = model(x, metapaths)
    got = rt(x, metapaths)
    assert got.logits.shape == expected.logits.shape
    assert (got.logits - expected.logits).abs().max() < ATOL
    assert (got.semantic_weights - expected.semantic_weights).abs().max() < ATOL


def test_han_manifest_names_one_edge_input_per_metapath(han):
    inputs = {i["name"]: i["shape"] for i in han[1].manifest["graphs"]["model"]["inputs"]}
    assert inputs == {"x": ["nodes", 6], **{f"edge_index.{p}": [2, f"edges.{p}"] for p in range(3)}}
    with pytest.raises(AttnlabError, match="expected 3 meta-path graphs, got 2"):
        han[1](torch.randn(3, 6), [_graph(3, 4)] * 2)
