"""Mask helpers against hand-written expectations and the nn.MultiheadAttention convention."""

import pytest
import torch

from attnlab.attention import (
    causal_mask,
    combine_masks,
    from_torch_masks,
    mask_from_lengths,
    mask_from_padding,
    to_float_mask,
)
from attnlab.errors import AttnlabError


def test_mask_from_lengths():
    mask = mask_from_lengths(torch.tensor([3, 1]), max_len=4)
    assert mask.shape == (2, 1, 1, 4)
    expected = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask[:, 0, 0], expected)


def test_mask_from_padding_flips_meaning():
    is_pad = torch.tensor([[False, False, True]])
    assert torch.equal(mask_from_padding(is_pad)[0, 0, 0], torch.tensor([True, True, False]))
    with pytest.raises(AttnlabError, match="bool tensor"):
        mask_from_padding(torch.zeros(1, 3))


@pytest.mark.parametrize("lq,lk", [(4, 4), (1, 5), (3, 7)])
def test_causal_mask_bottom_right(lq, lk):
    mask = causal_mask(lq, lk)
    for i in range(lq):
        for j in range(lk):
            assert bool(mask[i, j]) == (j <= lk - lq + i)


def test_causal_mask_rejects_more_queries_than_keys():
    with pytest.raises(AttnlabError, match="Lq <= Lk"):
        causal_mask(5, 3)


def test_combine_bool_and_float():
    a = torch.tensor([True, False, True])
    b = torch.tensor([True, True, False])
    assert torch.equal(combine_masks(a, b), a & b)
    f = combine_masks(a, torch.tensor([0.5, 0.0, 1.0]))
    assert f.dtype == torch.float32
    assert f[0] == 0.5 and f[1] == float("-inf") and f[2] == 1.0
    assert combine_masks(None, None) is None


def test_to_float_mask():
    f = to_float_mask(torch.tensor([[True, False]]), torch.float64)
    assert f.dtype == torch.float64 and f[0, 0] == 0 and f[0, 1] == float("-inf")


def test_from_torch_masks_inverts_bool_and_reshapes():
    b, h, lq, lk = 2, 3, 4, 5
    attn_mask = torch.rand(b * h, lq, lk) < 0.3  # True = blocked in torch
    kpm = torch.rand(b, lk) < 0.3
    mask = from_torch_masks(attn_mask, kpm, num_heads=h)
    expected = ~attn_mask.view(b, h, lq, lk) & ~kpm[:, None, None, :]
    assert torch.equal(mask, expected)
    float_mask = torch.randn(lq, lk)
    assert torch.equal(from_torch_masks(float_mask), float_mask)
