"""WordPiece (Schuster & Nakajima 2012; Wu et al. 2016), BERT's tokenizer.

Text is lower-cased and accent-stripped (BERT's "uncased" normalizer), split on
whitespace and punctuation, and each word is cut greedily into the longest pieces in
the vocabulary, word-internal pieces marked ``##``::

    "unaffable"  ->  ["un", "##aff", "##able"]

Training runs HuggingFace ``tokenizers``' WordPiece trainer offline. Besides the
attnlab files, :meth:`WordPieceTokenizer.save` writes ``vocab.txt`` (one token per
line, line number = id), the file ``transformers.BertTokenizer`` reads; the saved
``tokenizer.json`` carries BERT's ``[CLS] A [SEP] B [SEP]`` template, which attnlab's
own ``encode`` never applies (it adds no special tokens) but ``transformers`` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from attnlab.data.tokenizer import SpecialTokens, Tokenizer, _check_texts
from attnlab.errors import AttnlabError
from attnlab.io import read_json, write_text
from attnlab.validation import read_text

VOCAB_FILE = "vocab.txt"
BERT_SPECIALS = SpecialTokens(
    pad="[PAD]", unk="[UNK]", bos="[CLS]", eos="[SEP]", mask="[MASK]", cls="[CLS]", sep="[SEP]"
)


class WordPieceTokenizer(Tokenizer):
    """BERT-style uncased WordPiece; ids: ``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3, ``[MASK]`` 4."""

    kind = "wordpiece"
    PREFIX: ClassVar[str] = "##"

    @classmethod
    def _backend(cls, vocab: dict[str, int], special_tokens: SpecialTokens, lowercase: bool = True) -> HFTokenizer:
        """BERT's normalizer, pre-tokenizer, decoder and [CLS]/[SEP] template around ``vocab``."""
        backend = HFTokenizer(models.WordPiece(vocab=vocab, unk_token=special_tokens.unk, continuing_subword_prefix=cls.PREFIX))
        backend.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase, clean_text=True)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix=cls.PREFIX)
        backend.add_special_tokens(special_tokens.strings())  # matched whole in raw text, e.g. "[MASK]"
        cls_token, sep_token = special_tokens.cls, special_tokens.sep
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls_token} $A {sep_token}",
            pair=f"{cls_token} $A {sep_token} $B:1 {sep_token}:1",
            special_tokens=[(cls_token, vocab[cls_token]), (sep_token, vocab[sep_token])],
        )
        return backend

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, min_freq: int = 2, special_tokens: SpecialTokens = BERT_SPECIALS
    ) -> WordPieceTokenizer:
        """Learn a vocabulary of ``vocab_size`` entries (special tokens included)."""
        specials = special_tokens.strings()
        if vocab_size <= len(specials):
            raise AttnlabError(f"vocab_size: expected > {len(specials)} (the special tokens), got {vocab_size}")
        if special_tokens.cls is None or special_tokens.sep is None or special_tokens.mask is None:
            raise AttnlabError("special_tokens: WordPiece for BERT needs cls, sep and mask tokens")
        trained = HFTokenizer(models.WordPiece(unk_token=special_tokens.unk, continuing_subword_prefix=cls.PREFIX))
        trained.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
        trained.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_freq, special_tokens=specials,
            continuing_subword_prefix=cls.PREFIX, show_progress=False,
        )
        trained.train_from_iterator(_check_texts(texts), trainer)
        # Sorted ids; note the trainer breaks ties between equally frequent pairs in hash
        # order, so two trainings may differ: a checkpoint keeps the tokenizer it used.
        learned = sorted(set(trained.get_vocab()) - set(specials))
        vocab = {token: i for i, token in enumerate(specials + learned)}
        return cls(cls._backend(vocab, special_tokens), special_tokens)

    @classmethod
    def from_vocab_file(
        cls, path: str | Path, lowercase: bool = True, special_tokens: SpecialTokens = BERT_SPECIALS
    ) -> WordPieceTokenizer:
        """A tokenizer from a BERT ``vocab.txt`` (line number = id), e.g. a HuggingFace checkpoint's."""
        path = Path(path)
        if not path.is_file():
            raise AttnlabError(f"{path}: vocab file not found")
        vocab: dict[str, int] = {}
        for index, token in enumerate(read_text(path, strict=True).splitlines()):  # UTF-8, no NUL bytes
            vocab.setdefault(token, index)
        missing = [t for t in special_tokens.strings() if t not in vocab]
        if missing:
            raise AttnlabError(f"{path}: special tokens {missing} are not in the vocabulary")
        return cls(cls._backend(vocab, special_tokens, lowercase), special_tokens)

    def vocab(self) -> list[str]:
        """Tokens in id order."""
        return [self.id_to_token(i) for i in range(self.vocab_size)]

    def _config(self) -> dict[str, Any]:
        # Fields transformers' BertTokenizer reads from tokenizer_config.json.
        return {**super()._config(), "do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": 512}

    def save(self, directory: str | Path) -> None:
        """The attnlab files and ``vocab.txt``."""
        super().save(directory)
        write_text(Path(directory) / VOCAB_FILE, "".join(token + "\n" for token in self.vocab()))


def tokenizer_from_folder(directory: Path, where: str) -> Tokenizer:
    """The tokenizer saved in a BERT folder (a checkpoint, an export): attnlab's files, or a
    HuggingFace ``vocab.txt`` (``do_lower_case`` from its ``tokenizer_config.json``);
    ``where`` names the folder in the error when there is neither."""
    path = directory / "tokenizer_config.json"
    config = read_json(path) if path.exists() else {}  # a folder or an unreadable file: read_json's one line
    if isinstance(config, dict) and "kind" in config:
        return Tokenizer.load(directory)
    if (directory / VOCAB_FILE).is_file():
        lowercase = config.get("do_lower_case", True) if isinstance(config, dict) else True
        return WordPieceTokenizer.from_vocab_file(directory / VOCAB_FILE, lowercase=bool(lowercase))
    raise AttnlabError(f"{where}: no tokenizer in the folder (attnlab's files or a vocab.txt)")
