"""attnlab.data: embedded data sets, user-file loaders, tokenizers and batching."""

from attnlab.data.tokenizer import BPETokenizer, SpecialTokens, Tokenizer, WordTokenizer

__all__ = ["BPETokenizer", "SpecialTokens", "Tokenizer", "WordTokenizer"]
