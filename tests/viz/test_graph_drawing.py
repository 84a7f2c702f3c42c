"""Graph-attention drawing: direction merging, self-attention, a PNG written atomically."""

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.viz.graph import draw_graph_attention, undirected_attention


def test_undirected_attention_takes_the_max_direction_and_head_mean():
    edge_index = torch.tensor([[0, 1, 2, 2, 1], [1, 0, 1, 2, 1]])
    alpha = torch.tensor([[0.2, 0.4], [0.9, 0.7], [0.1, 0.1], [1.0, 0.5], [0.6, 0.8]])
    weights, self_attention = undirected_attention(edge_index, alpha, num_nodes=3)
    assert weights == pytest.approx({(0, 1): 0.8, (1, 2): 0.1})
    assert self_attention.tolist() == pytest.approx([0.0, 0.7, 0.75])
    with pytest.raises(AttnlabError, match="one row per edge"):
        undirected_attention(edge_index, alpha[:3], 3)


def test_draw_writes_a_png(tmp_path):
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    path = tmp_path / "sub" / "attention.png"
    draw_graph_attention(edge_index, torch.rand(4, 2), 3, torch.tensor([0, 1, 0]), ["a", "b", "c"], ["x", "y"], path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in path.parent.iterdir()] == ["attention.png"]  # no temporary left behind
