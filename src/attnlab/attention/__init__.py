"""Attention mechanisms: one file each, all on the shared core (score -> mask -> normalize -> sum)."""

from attnlab.attention.additive import AdditiveAttention
from attnlab.attention.core import AttentionOutput, attend, scaled_dot_product_attention
from attnlab.attention.coverage import CoverageAttention, coverage_loss
from attnlab.attention.graph import GATConv, SemanticAttention
from attnlab.attention.guided_alignment import alignment_targets, guided_alignment_loss
from attnlab.attention.hard import HardAttention, ReinforceBaseline
from attnlab.attention.kv_cache import KVCache, make_caches
from attnlab.attention.local import LocalAttention
from attnlab.attention.location import LocationSensitiveAttention
from attnlab.attention.luong import LuongAttention
from attnlab.attention.masks import (
    causal_mask,
    combine_masks,
    from_torch_masks,
    mask_from_lengths,
    mask_from_padding,
    to_float_mask,
)
from attnlab.attention.monotonic import MonotonicAttention, monotonic_attention
from attnlab.attention.multi_head import MultiHeadAttention
from attnlab.attention.normalizers import hardmax, safe_softmax, sample, sparsemax
from attnlab.attention.positional import (
    LearnedPositions,
    RotaryEmbedding,
    alibi_bias,
    sinusoidal_positions,
)
from attnlab.attention.scores import (
    additive_score,
    concat_score,
    dot_score,
    general_score,
    scaled_dot_score,
)

__all__ = [
    "AdditiveAttention",
    "AttentionOutput",
    "CoverageAttention",
    "GATConv",
    "HardAttention",
    "KVCache",
    "LearnedPositions",
    "LocalAttention",
    "LocationSensitiveAttention",
    "LuongAttention",
    "MonotonicAttention",
    "MultiHeadAttention",
    "ReinforceBaseline",
    "RotaryEmbedding",
    "SemanticAttention",
    "additive_score",
    "alibi_bias",
    "alignment_targets",
    "attend",
    "causal_mask",
    "combine_masks",
    "concat_score",
    "coverage_loss",
    "dot_score",
    "from_torch_masks",
    "general_score",
    "guided_alignment_loss",
    "hardmax",
    "make_caches",
    "mask_from_lengths",
    "mask_from_padding",
    "monotonic_attention",
    "safe_softmax",
    "sample",
    "scaled_dot_product_attention",
    "scaled_dot_score",
    "sinusoidal_positions",
    "sparsemax",
    "to_float_mask",
]
