"""attnlab.models"""

from attnlab.models.transformer import Transformer, TransformerConfig

__all__ = ["Transformer", "TransformerConfig"]
