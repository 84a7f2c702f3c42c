"""Layers the models are built from: linear maps, feed-forward networks and Transformer blocks.

The names are loaded on first use: :mod:`attnlab.attention.multi_head` imports
:mod:`.linear`, and :mod:`.blocks` imports it back.
"""

import importlib

_EXPORTS = {
    "BlockOutput": "blocks", "DecoderBlock": "blocks", "EncoderBlock": "blocks", "Residual": "blocks",
    "encoder_stack": "blocks", "run_encoder": "blocks", "FeedForward": "feed_forward",
    "get_activation": "feed_forward", "Linear": "linear",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
