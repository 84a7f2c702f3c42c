"""attnlab.models"""

from attnlab.models.bert import BERT, BERTConfig
from attnlab.models.gat import GAT, HAN, GATConfig, HANConfig
from attnlab.models.gpt import GPT, GPTConfig
from attnlab.models.seq2seq import Seq2Seq, Seq2SeqConfig
from attnlab.models.transformer import Transformer, TransformerConfig
from attnlab.models.vit import ViT, ViTConfig

__all__ = ["BERT", "BERTConfig", "GAT", "GATConfig", "HAN", "HANConfig", "GPT", "GPTConfig", "Seq2Seq", "Seq2SeqConfig", "Transformer", "TransformerConfig", "ViT", "ViTConfig"]
