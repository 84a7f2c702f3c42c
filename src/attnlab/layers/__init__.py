"""Layers the models are built from: feed-forward networks and Transformer blocks."""

from attnlab.layers.blocks import (
    BlockOutput,
    DecoderBlock,
    EncoderBlock,
    Residual,
    encoder_stack,
    run_encoder,
)
from attnlab.layers.feed_forward import FeedForward, get_activation

__all__ = ["BlockOutput", "DecoderBlock", "EncoderBlock", "FeedForward", "Residual", "encoder_stack", "get_activation", "run_encoder"]
