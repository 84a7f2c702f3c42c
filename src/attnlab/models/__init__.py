"""attnlab.models"""

from attnlab.models.bert import BERT, BERTConfig
from attnlab.models.gat import GAT, HAN, GATConfig, HANConfig
from attnlab.models.gpt import GPT, GPTConfig
from attnlab.models.transformer import Transformer, TransformerConfig
from attnlab.models.vit import ViT, ViTConfig

__all__ = ["BERT", "BERTConfig", "GAT", "GATConfig", "HAN", "HANConfig", "GPT", "GPTConfig", "Transformer", "TransformerConfig", "ViT", "ViTConfig"]
