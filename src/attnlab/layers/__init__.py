"""Layers the models are built from: feed-forward networks and Transformer blocks.

``Linear`` (``nn.Linear`` with oneDNN's fp32 products) lives in :mod:`attnlab.kernels.linear`
and is re-exported here.
"""

from attnlab.kernels.linear import Linear
from attnlab.layers.blocks import (
    BlockOutput,
    DecoderBlock,
    Residual,
    TransformerBlock,
    encoder_stack,
    run_encoder,
)
from attnlab.layers.feed_forward import FeedForward, get_activation

__all__ = [
    "BlockOutput",
    "DecoderBlock",
    "TransformerBlock",
    "FeedForward",
    "Linear",
    "Residual",
    "encoder_stack",
    "get_activation",
    "run_encoder",
]
