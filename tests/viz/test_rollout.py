"""Attention rollout against a float64 loop over the formula of Abnar & Zuidema (2020)."""

import numpy as np
import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.viz.rollout import (
    attention_figure,
    attention_rollout,
    class_token_map,
    layer_head_grid,
)


def reference(attentions, fusion, residual):
    """R = prod_l normalize(residual I + (1 - residual) fuse_heads(A_l)), later layers on the left."""
    out = []
    for b in range(attentions[0].shape[0]):
        r = np.eye(attentions[0].shape[-1])
        for a in attentions:
            a = a[b].double().numpy()
            fused = {"mean": a.mean(0), "max": a.max(0), "min": a.min(0)}[fusion]
            m = residual * np.eye(len(fused)) + (1 - residual) * fused
            m = m / m.sum(1, keepdims=True)
            r = m @ r
        out.append(r)
    return torch.tensor(np.stack(out))


def random_attention(batch, heads, length):
    return torch.rand(batch, heads, length, length).softmax(-1)


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_against_float64_reference(fusion):
    attentions = [random_attention(2, 3, 5) for _ in range(4)]
    got = attention_rollout(attentions, head_fusion=fusion, residual=0.3)
    torch.testing.assert_close(got.double(), reference(attentions, fusion, 0.3), atol=1e-6, rtol=0)
    torch.testing.assert_close(got.sum(-1), torch.ones(2, 5), atol=1e-6, rtol=0)  # rows stay distributions


def test_class_token_map_and_figures():
    attentions = [random_attention(1, 2, 1 + 6) for _ in range(2)]
    heat = class_token_map(attention_rollout(attentions), (2, 3))
    assert heat.shape == (1, 2, 3) and torch.isclose(heat.max(), torch.tensor(1.0))
    fig = attention_figure(torch.rand(1, 4, 6) * 2 - 1, attentions, "x")
    assert len(fig.axes) == 3 * 2
    assert len(layer_head_grid(torch.stack([a[0] for a in attentions]), list("abcdefg")).axes) == 4


def test_bad_input():
    with pytest.raises(AttnlabError, match="at least one layer"):
        attention_rollout([])
    with pytest.raises(AttnlabError, match="head_fusion"):
        attention_rollout([random_attention(1, 1, 3)], head_fusion="median")
    with pytest.raises(AttnlabError, match="do not fit"):
        class_token_map(torch.rand(1, 5, 5), (2, 3))
