"""Encoder/decoder blocks against torch.nn.TransformerEncoderLayer/DecoderLayer with the
same weights, post-LN and pre-LN (fp32, atol 1e-5)."""

import pytest
import torch
from torch import nn

from attnlab.attention import MultiHeadAttention, causal_mask
from attnlab.layers import DecoderBlock, TransformerBlock

D, H, F = 32, 4, 64


def copy_ffn_and_norms(block, ref, residual_names):
    block.ffn.linear1.load_state_dict(ref.linear1.state_dict())
    block.ffn.linear2.load_state_dict(ref.linear2.state_dict())
    for i, name in enumerate(residual_names, start=1):
        getattr(block, name).norm.load_state_dict(getattr(ref, f"norm{i}").state_dict())


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_block_matches_torch(norm_first, activation):
    ref = nn.TransformerEncoderLayer(D, H, F, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first)
    block = TransformerBlock(D, H, F, dropout=0.0, activation=activation, norm_first=norm_first)
    block.self_attn = MultiHeadAttention.from_torch(ref.self_attn)
    copy_ffn_and_norms(block, ref, ["attn_residual", "ffn_residual"])
    x = torch.randn(2, 7, D)
    padding = torch.tensor([[False] * 7, [False] * 5 + [True] * 2])
    expected = ref(x, src_key_padding_mask=padding)
    got = block(x, mask=~padding[:, None, None, :]).hidden
    torch.testing.assert_close(got[~padding], expected[~padding], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_matches_torch(norm_first):
    ref = nn.TransformerDecoderLayer(D, H, F, dropout=0.0, batch_first=True, norm_first=norm_first)
    block = DecoderBlock(D, H, F, dropout=0.0, norm_first=norm_first)
    block.self_attn = MultiHeadAttention.from_torch(ref.self_attn)
    block.cross_attn = MultiHeadAttention.from_torch(ref.multihead_attn)
    copy_ffn_and_norms(block, ref, ["self_residual", "cross_residual", "ffn_residual"])
    x, memory = torch.randn(2, 6, D), torch.randn(2, 8, D)
    expected = ref(x, memory, tgt_mask=~causal_mask(6))
    out = block(x, memory, need_weights=True)
    torch.testing.assert_close(out.hidden, expected, atol=1e-5, rtol=1e-4)
    assert out.self_weights.shape == (2, H, 6, 6) and out.cross_weights.shape == (2, H, 6, 8)
    assert (out.self_weights.triu(1) == 0).all()
