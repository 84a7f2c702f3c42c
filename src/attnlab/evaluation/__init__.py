"""attnlab.evaluation: decoding and metrics (BLEU, chrF, AER, bits per character, accuracy)."""

from attnlab.evaluation.lm import evaluate_lm
from attnlab.evaluation.metrics import (
    accuracy,
    alignment_error_rate,
    alignments_from_attention,
    bits_per_character,
    bleu,
    chrf,
    perplexity,
)

__all__ = [
    "accuracy",
    "alignment_error_rate",
    "alignments_from_attention",
    "bits_per_character",
    "bleu",
    "chrf",
    "evaluate_lm",
    "perplexity",
]
