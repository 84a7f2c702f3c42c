"""Attention mechanisms: one file each, all on the shared core (score -> mask -> normalize -> sum)."""

from attnlab.attention.core import AttentionOutput, attend, scaled_dot_product_attention
from attnlab.attention.graph import GATConv, SemanticAttention
from attnlab.attention.kv_cache import KVCache, make_caches
from attnlab.attention.masks import (
    causal_mask,
    combine_masks,
    from_torch_masks,
    mask_from_lengths,
    mask_from_padding,
    to_float_mask,
)
from attnlab.attention.multi_head import MultiHeadAttention
from attnlab.attention.normalizers import hardmax, safe_softmax, sample, sparsemax
from attnlab.attention.positional import (
    LearnedPositions,
    RotaryEmbedding,
    alibi_bias,
    sinusoidal_positions,
)

__all__ = [
    "AttentionOutput",
    "GATConv",
    "KVCache",
    "LearnedPositions",
    "MultiHeadAttention",
    "RotaryEmbedding",
    "SemanticAttention",
    "alibi_bias",
    "attend",
    "causal_mask",
    "combine_masks",
    "from_torch_masks",
    "hardmax",
    "make_caches",
    "mask_from_lengths",
    "mask_from_padding",
    "safe_softmax",
    "sample",
    "scaled_dot_product_attention",
    "sinusoidal_positions",
    "sparsemax",
    "to_float_mask",
]
