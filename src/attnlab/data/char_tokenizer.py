"""Character-level tokenizer: one token per Unicode character (Karpathy's char-rnn, nanoGPT's
Shakespeare-char).

The vocabulary is the special tokens followed by every character seen at least
``min_freq`` times in the training text, in code-point order; other characters encode to
``unk``. Bits per character are then simply the loss in bits per token.

Files are the shared :class:`~attnlab.data.tokenizer.Tokenizer` format (a HuggingFace
``WordLevel`` model whose words are single characters, with a ``Fuse`` decoder), so
``Tokenizer.load`` reads it back. Encoding a 30 MB corpus through the backend's
pre-tokenizer takes minutes, so :meth:`CharTokenizer.encode` maps code points through a
lookup table with NumPy instead (same ids; a test checks it against the backend).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from tokenizers import Regex, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from attnlab.data.tokenizer import SpecialTokens, Tokenizer
from attnlab.errors import AttnlabError

LM_SPECIAL_TOKENS = SpecialTokens(pad="<pad>", unk="<unk>", bos="<|endoftext|>", eos="<|endoftext|>")


class CharTokenizer(Tokenizer):
    """One id per character; see the module docstring."""

    kind = "char"

    def __init__(self, backend: HFTokenizer, special_tokens: SpecialTokens = LM_SPECIAL_TOKENS):
        super().__init__(backend, special_tokens)
        vocab = backend.get_vocab()
        chars = {ord(t): i for t, i in vocab.items() if len(t) == 1}
        self._table = np.full(max(chars, default=0) + 2, self.unk_id, dtype=np.int64)  # code point -> id
        self._table[list(chars)] = list(chars.values())
        self._strings = [""] * self.vocab_size
        for token, index in vocab.items():
            self._strings[index] = token

    @classmethod
    def train(
        cls, texts: Iterable[str], min_freq: int = 1, special_tokens: SpecialTokens = LM_SPECIAL_TOKENS
    ) -> CharTokenizer:
        """Keep the characters seen ``min_freq`` times or more."""
        if min_freq < 1:
            raise AttnlabError(f"min_freq: expected >= 1, got {min_freq}")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text)
        chars = sorted(c for c, n in counts.items() if n >= min_freq)
        if not chars:
            raise AttnlabError("texts: no character occurs often enough to make a vocabulary")
        vocab = {token: i for i, token in enumerate(special_tokens.strings() + chars)}
        return cls(_backend(vocab, special_tokens.unk), special_tokens)

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        """``encode`` as an int64 array, fast enough for a whole corpus."""
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        return self._table[points.clip(max=len(self._table) - 1)]  # the last slot is unk

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise AttnlabError(f"ids: {bad[:5]} out of range for vocab_size {self.vocab_size}")
        special = self.special_ids if skip_special else set()
        return "".join(self._strings[i] for i in ids if i not in special)


def _backend(vocab: dict[str, int], unk: str) -> HFTokenizer:
    backend = HFTokenizer(models.WordLevel(vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("(?m)."), behavior="isolated")  # every character
    backend.decoder = decoders.Fuse()
    return backend
