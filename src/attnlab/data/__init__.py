"""attnlab.data: embedded data sets, user-file loaders, tokenizers and batching."""

from attnlab.data.corpus import (
    CorpusSplits,
    ParallelCorpus,
    format_pharaoh,
    parse_pharaoh,
    read_tsv,
)
from attnlab.data.synthetic import SYNTHETIC_PRESETS, SyntheticConfig, synthetic_corpus
from attnlab.data.tokenizer import BPETokenizer, SpecialTokens, Tokenizer, WordTokenizer

__all__ = [
    "BPETokenizer",
    "CorpusSplits",
    "ParallelCorpus",
    "SYNTHETIC_PRESETS",
    "SpecialTokens",
    "SyntheticConfig",
    "Tokenizer",
    "WordTokenizer",
    "format_pharaoh",
    "parse_pharaoh",
    "read_tsv",
    "synthetic_corpus",
]
