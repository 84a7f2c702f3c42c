"""attnlab.models"""

from attnlab.models.bert import BERT, BERTConfig
from attnlab.models.gpt import GPT, GPTConfig
from attnlab.models.transformer import Transformer, TransformerConfig
from attnlab.models.vit import ViT, ViTConfig

__all__ = ["BERT", "BERTConfig", "GPT", "GPTConfig", "Transformer", "TransformerConfig", "ViT", "ViTConfig"]
