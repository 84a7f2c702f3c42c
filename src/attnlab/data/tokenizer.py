"""Tokenizers: one small interface, backed by HuggingFace ``tokenizers``.

Every attnlab tokenizer is a :class:`Tokenizer`: it turns text into ids and back,
knows its special tokens, and saves to / loads from a directory::

    directory/
      tokenizer.json          the HuggingFace ``tokenizers`` model (vocab, merges, rules)
      tokenizer_config.json   {"kind": "word" | "bpe" | ..., "special_tokens": {...}}

``Tokenizer.load(directory)`` reads ``kind`` and builds the matching subclass, so a
checkpoint folder can carry its tokenizer whatever its type. A new tokenizer (char,
byte-level BPE, WordPiece) subclasses :class:`Tokenizer`, sets ``kind`` and adds a
``train`` classmethod; the subclass registers itself for ``load`` when its module is
imported (``attnlab.data`` imports them all).

Encoding never adds special tokens: ``encode("a b")`` is the ids of ``a`` and ``b``
only. Whoever builds model inputs adds BOS/EOS/CLS/SEP explicitly.

Word positions. ``word_ids(text)`` maps every token to the index of the whitespace
word (``text.split()``) it came from, using the character offsets the backend
records. Subword attention is averaged into word attention with it, which is what
alignment evaluation (AER against gold word alignments) needs.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from attnlab.errors import AttnlabError
from attnlab.io import read_json, write_json, write_text

BACKEND_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """The strings of the special tokens; optional ones are ``None`` when absent.

    ``bos`` and ``eos`` may be the same string (GPT-2 uses one ``<|endoftext|>``).
    """

    pad: str = "<pad>"
    unk: str = "<unk>"
    bos: str = "<s>"
    eos: str = "</s>"
    mask: str | None = None
    cls: str | None = None
    sep: str | None = None

    def strings(self) -> list[str]:
        """Distinct special strings in a fixed order (pad gets id 0 when trained)."""
        out: list[str] = []
        for token in dataclasses.astuple(self):
            if token is not None and token not in out:
                out.append(token)
        return out


def special_tokens_from(value: Any) -> SpecialTokens:
    """``SpecialTokens`` from the ``special_tokens`` object of ``tokenizer_config.json``:
    known roles only, each a string (``null`` for an absent optional one)."""
    roles = [f.name for f in dataclasses.fields(SpecialTokens)]
    if not isinstance(value, dict):
        raise AttnlabError(f"special_tokens: expected an object {{role: token}}, got {json.dumps(value)[:40]}")
    unknown = sorted(set(value) - set(roles))
    if unknown:
        raise AttnlabError(f"special_tokens: unknown role(s) {unknown}; expected some of {roles}")
    for role, token in value.items():
        optional = SpecialTokens.__dataclass_fields__[role].default is None
        if not (isinstance(token, str) and token) and not (optional and token is None):
            raise AttnlabError(f"special_tokens.{role}: expected a token string{' or null' if optional else ''}, "
                               f"got {json.dumps(token)[:40]}")
    return SpecialTokens(**value)


class Tokenizer:
    """Base of every attnlab tokenizer: text <-> ids around a ``tokenizers.Tokenizer``."""

    kind: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[Tokenizer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Tokenizer._registry[cls.kind] = cls

    def __init__(self, backend: HFTokenizer, special_tokens: SpecialTokens = SpecialTokens()):
        missing = [t for t in special_tokens.strings() if backend.token_to_id(t) is None]
        if missing:
            raise AttnlabError(f"special_tokens: {missing} are not in the tokenizer vocabulary")
        self.backend = backend
        self.special_tokens = special_tokens

    # --- special ids: ``None`` for an optional token the tokenizer does not have ---
    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    pad_id = property(lambda self: self._id(self.special_tokens.pad))
    unk_id = property(lambda self: self._id(self.special_tokens.unk))
    bos_id = property(lambda self: self._id(self.special_tokens.bos))
    eos_id = property(lambda self: self._id(self.special_tokens.eos))
    mask_id = property(lambda self: self._id(self.special_tokens.mask))
    cls_id = property(lambda self: self._id(self.special_tokens.cls))
    sep_id = property(lambda self: self._id(self.special_tokens.sep))

    @property
    def special_ids(self) -> set[int]:
        return {self._id(t) for t in self.special_tokens.strings()}

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    # --- text <-> ids ---
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, without any special token added."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``[encode(t) for t in texts]``, computed in the backend's parallel batch path."""
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise AttnlabError(f"ids: {bad[:5]} out of range for vocab_size {self.vocab_size}")
        return self.backend.decode(ids, skip_special_tokens=skip_special)

    def tokens(self, text: str) -> list[str]:
        """The token strings of ``text`` (what ``encode`` gives ids for)."""
        return self.backend.encode(text, add_special_tokens=False).tokens

    def id_to_token(self, index: int) -> str:
        token = self.backend.id_to_token(int(index))
        if token is None:
            raise AttnlabError(f"index: {index} out of range for vocab_size {self.vocab_size}")
        return token

    def token_to_id(self, token: str) -> int:
        """The id of ``token``, or ``unk_id`` when it is not in the vocabulary."""
        index = self.backend.token_to_id(token)
        return self.unk_id if index is None else index

    def word_ids(self, text: str) -> list[int]:
        """Per token of ``encode(text)``, the index of its whitespace word in ``text.split()``."""
        return _word_ids(text, self.backend.encode(text, add_special_tokens=False).offsets)

    def word_ids_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``[word_ids(t) for t in texts]``, encoded in the backend's parallel batch path."""
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=False)
        return [_word_ids(text, e.offsets) for text, e in zip(texts, encodings)]

    # --- files ---
    def _config(self) -> dict[str, Any]:
        """What ``tokenizer_config.json`` stores; subclasses may add fields."""
        return {"kind": self.kind, "special_tokens": dataclasses.asdict(self.special_tokens)}

    @classmethod
    def _from_config(cls, backend: HFTokenizer, config: dict[str, Any]) -> Tokenizer:
        if "special_tokens" not in config:
            raise AttnlabError("special_tokens: missing; expected an object {role: token}")
        return cls(backend, special_tokens_from(config["special_tokens"]))

    def save(self, directory: str | Path) -> None:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` (each atomically)."""
        directory = Path(directory)
        write_text(directory / BACKEND_FILE, self.backend.to_str())
        write_json(directory / CONFIG_FILE, self._config())

    @staticmethod
    def load(directory: str | Path) -> Tokenizer:
        """Read a tokenizer saved by :meth:`save`, whatever its kind."""
        directory = Path(directory)
        config = read_json(directory / CONFIG_FILE)
        kind = config.get("kind")
        if not isinstance(kind, str) or kind not in Tokenizer._registry:
            raise AttnlabError(
                f"{directory / CONFIG_FILE}: unknown tokenizer kind {kind!r}; "
                f"expected one of {sorted(Tokenizer._registry)}"
            )
        path = directory / BACKEND_FILE
        if not path.is_file():
            raise AttnlabError(f"{path}: file not found")
        try:
            backend = HFTokenizer.from_file(str(path))
        except Exception as e:  # the backend raises its own exception type on bad JSON
            raise AttnlabError(f"{path}: not a readable tokenizer file ({e})") from None
        try:
            return Tokenizer._registry[kind]._from_config(backend, config)
        except AttnlabError as e:  # the special tokens: name the file
            raise AttnlabError(f"{directory / CONFIG_FILE}: {e}") from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def _check_texts(texts: Iterable[str]) -> list[str]:
    texts = list(texts)
    if not texts:
        raise AttnlabError("texts: expected at least one training text, got none")
    return texts


def _check_vocab_size(name: str, size: int, special_tokens: SpecialTokens) -> list[str]:
    """The special strings, after checking that a vocabulary of ``size`` has room beyond them."""
    specials = special_tokens.strings()
    if size <= len(specials):
        raise AttnlabError(f"{name}: expected > {len(specials)} (the special tokens), got {size}")
    return specials


class WordTokenizer(Tokenizer):
    """Word-level: whitespace + punctuation pre-tokenization, unknown words -> ``unk``."""

    kind = "word"

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        min_freq: int = 1,
        max_size: int | None = None,
        special_tokens: SpecialTokens = SpecialTokens(),
    ) -> WordTokenizer:
        """Keep words seen ``min_freq`` times or more, the most frequent first.

        ``max_size`` bounds the whole vocabulary, special tokens included.
        """
        if min_freq < 1:
            raise AttnlabError(f"min_freq: expected >= 1, got {min_freq}")
        max_size = 10**9 if max_size is None else max_size
        specials = _check_vocab_size("max_size", max_size, special_tokens)
        backend = HFTokenizer(models.WordLevel(unk_token=special_tokens.unk))
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(
            vocab_size=max_size, min_frequency=min_freq,
            special_tokens=specials, show_progress=False,
        )
        backend.train_from_iterator(_check_texts(texts), trainer)
        return cls(backend, special_tokens)


class BPETokenizer(Tokenizer):
    """Subword BPE (Sennrich et al., 2016) over whitespace + punctuation words.

    Word ends carry the ``</w>`` suffix, so decoding puts spaces back between words.
    """

    kind = "bpe"
    WORD_END: ClassVar[str] = "</w>"

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        min_freq: int = 2,
        special_tokens: SpecialTokens = SpecialTokens(),
    ) -> BPETokenizer:
        """Learn merges until the vocabulary (special tokens included) has ``vocab_size`` entries."""
        specials = _check_vocab_size("vocab_size", vocab_size, special_tokens)
        backend = HFTokenizer(models.BPE(unk_token=special_tokens.unk, end_of_word_suffix=cls.WORD_END))
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        backend.decoder = decoders.BPEDecoder(suffix=cls.WORD_END)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_freq, special_tokens=specials,
            end_of_word_suffix=cls.WORD_END, show_progress=False,
        )
        backend.train_from_iterator(_check_texts(texts), trainer)
        _renumber_bpe(backend, special_tokens)
        return cls(backend, special_tokens)


def _renumber_bpe(backend: HFTokenizer, special_tokens: SpecialTokens) -> None:
    """Give trained BPE ids a fixed order: specials, sorted alphabet, merges in merge order.

    The ``tokenizers`` trainer learns the same merges on every run but numbers the
    initial alphabet in hash-map order, so ids would differ from run to run.
    """
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    merged = list(dict.fromkeys(a + b for a, b in merges))
    specials = special_tokens.strings()
    alphabet = sorted(set(model["vocab"]) - set(specials) - set(merged))
    vocab = {token: i for i, token in enumerate(specials + alphabet + merged)}
    suffix = {"end_of_word_suffix": model["end_of_word_suffix"]} if model["end_of_word_suffix"] else {}
    backend.model = models.BPE(vocab=vocab, merges=merges, unk_token=special_tokens.unk, **suffix)


GPT2_SPECIAL_TOKENS = SpecialTokens(
    pad="<|endoftext|>", unk="<|endoftext|>", bos="<|endoftext|>", eos="<|endoftext|>"
)


class ByteLevelBPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2, Radford et al. 2019): merges over the 256 byte symbols.

    Every text encodes (no unknown tokens) and decodes back exactly; a space is part of
    the word after it (``Ġword``). GPT-2's only special token is ``<|endoftext|>``.
    """

    kind = "byte_bpe"

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        min_freq: int = 2,
        special_tokens: SpecialTokens = GPT2_SPECIAL_TOKENS,
    ) -> ByteLevelBPETokenizer:
        """Learn merges until the vocabulary (256 bytes + specials + merges) has ``vocab_size`` entries."""
        specials = special_tokens.strings()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if vocab_size <= len(specials) + len(alphabet):
            raise AttnlabError(f"vocab_size: expected > {len(specials) + len(alphabet)} (bytes + special tokens), got {vocab_size}")
        backend = byte_level_backend(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_freq, special_tokens=specials,
            initial_alphabet=alphabet, show_progress=False,
        )
        backend.train_from_iterator(_check_texts(texts), trainer)
        _renumber_bpe(backend, special_tokens)
        return cls(backend, special_tokens)


def byte_level_backend(model: models.Model) -> HFTokenizer:
    """A ``tokenizers.Tokenizer`` with GPT-2's byte-level pre-tokenizer and decoder."""
    backend = HFTokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return backend


def _word_ids(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """The whitespace-word index of every token, from its character ``offsets`` in ``text``."""
    starts = [m.start() for m in re.finditer(r"\S+", text)]
    word_ids = []
    for start, end in offsets:
        while start < end - 1 and text[start].isspace():  # byte-level BPE: "Ġword" spans its space
            start += 1
        word_ids.append(max(bisect.bisect_right(starts, start) - 1, 0))
    return word_ids
