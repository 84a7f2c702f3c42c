"""Graph attention in ONNX: HAN's export equals the PyTorch model on graphs of sizes the
export never saw (fp32, 1e-4 absolute). The graph is the model's own forward over each
meta-path's adjacency matrix (``attnlab.attention.graph_dense``, tested against the edge
list and PyG in tests/attention/test_graph_dense.py); GAT's export is tested in
test_onnx.py."""

from __future__ import annotations

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.models import HAN
from attnlab.models.gat import HANConfig

ATOL = 1e-4


def _graph(nodes: int, edges: int) -> torch.Tensor:
    """Random edges, repeated ones and self-loops included (the layer counts each copy)."""
    return torch.randint(0, nodes, (2, edges))


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
    with pytest.raises(AttnlabError, match="this han export takes x, edge_index.0, edge_index.1, edge_index.2; got 3 tensors"):
        han[1](torch.randn(3, 6), [_graph(3, 4)] * 2)


def test_gatv2_equals_pytorch_on_graphs_of_other_sizes(tmp_path):
    from attnlab.export import export_onnx, load_runtime
    from attnlab.models import GAT
    from attnlab.models.gat import GATConfig

    torch.manual_seed(0)
    model = GAT(GATConfig(in_dim=6, num_classes=3, hidden_dim=4, heads=2, out_heads=2, dropout=0.0, v2=True)).eval()
    model.save_pretrained(tmp_path / "ckpt")
    rt = load_runtime(export_onnx(tmp_path / "ckpt", tmp_path / "onnx"))
    assert rt.manifest["graphs"]["model"]["exporter"] == "dynamo", rt.manifest["graphs"]["model"].get("fallback_reason")
    for nodes, edges in ((3, 2), (31, 120)):
        x, edge_index = torch.randn(nodes, 6), _graph(nodes, edges)
        with torch.no_grad():
            expected = model(x, edge_index).logits
        assert (rt(x, edge_index).logits - expected).abs().max() < ATOL
