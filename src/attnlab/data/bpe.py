"""Byte-level BPE for translating real languages, placeholders kept whole.

Chinese, Japanese or Thai text has no spaces between words, and a UI catalog's held-out
programs bring characters that training never saw. A byte-level BPE (GPT-2's scheme,
trained by the ``tokenizers`` package) covers both: every text encodes, with no unknown
token, and decodes back exactly (no space put between ``文件`` and ``：``), while the
frequent character sequences (``文件``, ``打开``) become single tokens. Each side of a
translator gets its own: the model's embeddings are per side anyway.

On top, every placeholder seen in the training texts (``%s``, ``%(name)s``, ``{0}``) is
an added token (:func:`attnlab.data.placeholders.protect_placeholders`): one id on both
sides, so the model learns to copy it, never to spell it.

The special tokens are the translators' (``<pad>``, ``<unk>``, ``<s>``, ``</s>``), not
GPT-2's single ``<|endoftext|>``: the decoder needs distinct BOS, EOS and padding.
docs/real_language.md measures this choice against the word-level and
end-of-word-suffix BPE tokenizers (vocabulary, tokens per sentence, unknown tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

from attnlab.data.placeholders import protect_placeholders
from attnlab.data.tokenizer import ByteLevelBPETokenizer, SpecialTokens, Tokenizer


def train_translation_bpe(texts: Sequence[str], vocab_size: int, *, protect: bool = True) -> ByteLevelBPETokenizer:
    """A byte-level BPE of ``vocab_size`` merges + bytes + specials, placeholders added whole."""
    tokenizer = ByteLevelBPETokenizer.train(texts, vocab_size=vocab_size, special_tokens=SpecialTokens())
    if protect:
        protect_placeholders(tokenizer, texts)
    return tokenizer


def tokenizer_stats(tokenizer: Tokenizer, texts: Sequence[str]) -> dict[str, float]:
    """Vocabulary size, mean tokens per text, share of unknown tokens, exact round trips."""
    ids = tokenizer.encode_batch(texts)
    tokens = sum(len(row) for row in ids)
    unk = tokenizer.unk_id
    exact = sum(tokenizer.decode(row) == text for row, text in zip(ids, texts))
    return {
        "vocab_size": tokenizer.vocab_size,
        "tokens_per_text": tokens / max(len(texts), 1),
        "unk_rate": sum(i == unk for row in ids for i in row) / max(tokens, 1),
        "round_trip": exact / max(len(texts), 1),
    }


def display_tokens(tokenizer: Tokenizer, text: str) -> list[str]:
    """The tokens of ``text`` as a reader sees them: ``打开`` where ``tokens`` gives ``æīĵå¼Ģ``.

    Byte-level tokens are the text span each one covers (a token inside a character
    shows the whole character); other tokenizers' tokens are returned as they are.
    """
    if not isinstance(tokenizer, ByteLevelBPETokenizer):
        return tokenizer.tokens(text)
    offsets = tokenizer.backend.encode(text, add_special_tokens=False).offsets
    return [text[start:end] for start, end in offsets]
