"""attnlab.data: embedded data sets, user-file loaders, tokenizers and batching."""

from attnlab.data.batching import TranslationBatches
from attnlab.data.char_tokenizer import CharTokenizer
from attnlab.data.corpus import (
    CorpusSplits,
    ParallelCorpus,
    format_pharaoh,
    parse_pharaoh,
    read_tsv,
)
from attnlab.data.lm_batches import LMBatches
from attnlab.data.parallel import load_parallel, read_parallel_files, split_corpus
from attnlab.data.stdlib_corpus import TextCorpus, load_corpus, stdlib_corpus
from attnlab.data.synthetic import SYNTHETIC_PRESETS, SyntheticConfig, synthetic_corpus
from attnlab.data.tokenizer import (
    BPETokenizer,
    ByteLevelBPETokenizer,
    SpecialTokens,
    Tokenizer,
    WordTokenizer,
)
from attnlab.data.wordpiece import WordPieceTokenizer

__all__ = [
    "BPETokenizer",
    "ByteLevelBPETokenizer",
    "CharTokenizer",
    "LMBatches",
    "TextCorpus",
    "CorpusSplits",
    "ParallelCorpus",
    "SYNTHETIC_PRESETS",
    "SpecialTokens",
    "SyntheticConfig",
    "Tokenizer",
    "TranslationBatches",
    "WordPieceTokenizer",
    "WordTokenizer",
    "load_corpus",
    "stdlib_corpus",
    "format_pharaoh",
    "load_parallel",
    "parse_pharaoh",
    "read_parallel_files",
    "read_tsv",
    "split_corpus",
    "synthetic_corpus",
]
