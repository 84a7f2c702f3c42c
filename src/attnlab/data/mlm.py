"""BERT pre-training data (Devlin et al. 2019): sentence pairs, NSP and MLM.

A *document* is a list of sentences. Each training example is a pair

    [CLS] A [SEP] B [SEP]          token_type_ids 0 ... 0 1 ... 1

where B is the sentence after A in its document (label 0, IsNext) or, half the time, a
random sentence of another document (label 1, NotNext). Then 15% of the tokens of A
and B (at least one) are chosen for prediction; a chosen token becomes ``[MASK]`` with
probability 0.8, a random non-special token with 0.1, and stays itself with 0.1.
``mlm_labels`` hold the original id at chosen positions and -100 elsewhere.

:class:`MLMBatches` draws every batch from ``(seed, step)`` alone, so a resumed run
sees exactly the batches of an uninterrupted one.

User text: a file with one sentence per line and blank lines between documents
(:func:`read_documents`). Embedded default: the Python standard library's own source
files, a document per file (:func:`source_documents`).

Notation: B batch, L padded length (<= max_len).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

from attnlab.data.tokenizer import Tokenizer
from attnlab.errors import AttnlabError
from attnlab.validation import read_text

IGNORE_INDEX = -100
MASK_RATE, MASK_TOKEN, RANDOM_TOKEN = 0.15, 0.8, 0.1


# --- documents ---------------------------------------------------------------------
def documents_from_text(text: str) -> list[list[str]]:
    """Blank lines separate documents; every other line is a sentence."""
    documents, current = [], []
    for line in text.splitlines():
        line = line.strip()
        if line:
            current.append(line)
        elif current:
            documents.append(current)
            current = []
    if current:
        documents.append(current)
    return documents


def read_documents(path: str | Path) -> list[list[str]]:
    path = Path(path)
    if not path.is_file():
        raise AttnlabError(f"{path}: text file not found")
    documents = documents_from_text(read_text(path))
    if not documents:
        raise AttnlabError(f"{path}: no text in the file (only whitespace)")
    return documents


def source_lines(source: str) -> list[tuple[str, bool]]:
    """The non-empty lines of a Python file as ``(text, is_prose)``.

    Prose is a comment (its ``#`` dropped) or a line inside a triple-quoted docstring;
    everything else is code.
    """
    lines, in_docstring = [], False
    for raw in source.splitlines():
        line = raw.strip()
        quotes = line.count('"""') + line.count("'''")
        prose = in_docstring or quotes > 0 or line.startswith("#")
        if quotes % 2:
            in_docstring = not in_docstring
        text = line.lstrip("#").replace('"""', "").replace("'''", "").strip() if prose else line
        if len(text) > 1:
            lines.append((text, prose))
    return lines


def source_documents(files: Iterable[str | Path], max_lines: int = 400) -> list[list[str]]:
    """A document per Python file: its first ``max_lines`` non-empty lines."""
    documents = []
    for f in files:
        lines = [text for text, _ in source_lines(Path(f).read_text(encoding="utf-8", errors="replace"))]
        if len(lines) >= 2:
            documents.append(lines[:max_lines])
    return documents


# --- masking ---------------------------------------------------------------------------
def mask_tokens(
    input_ids: Tensor, maskable: Tensor, tokenizer: Tokenizer, generator: torch.Generator, rate: float = MASK_RATE
) -> tuple[Tensor, Tensor]:
    """Choose ``max(1, round(rate * n))`` of the ``n`` maskable tokens of each row; 80/10/10.

    ``input_ids``, ``maskable`` ``(B, L)``; returns ``(masked input_ids, mlm_labels)``.
    """
    b, length = input_ids.shape
    counts = (maskable.sum(1).float() * rate).round().clamp(min=1).long()  # (B,)
    noise = torch.rand(b, length, generator=generator).masked_fill(~maskable, 2.0)
    ranks = noise.argsort(dim=1).argsort(dim=1)  # (B, L) rank of each position's noise
    chosen = (ranks < counts[:, None]) & maskable
    labels = input_ids.masked_fill(~chosen, IGNORE_INDEX)
    action = torch.rand(b, length, generator=generator)
    to_mask = chosen & (action < MASK_TOKEN)
    to_random = chosen & (action >= MASK_TOKEN) & (action < MASK_TOKEN + RANDOM_TOKEN)
    ordinary = torch.tensor(sorted(set(range(tokenizer.vocab_size)) - tokenizer.special_ids))
    random_ids = ordinary[torch.randint(len(ordinary), (b, length), generator=generator)]
    masked = input_ids.masked_fill(to_mask, tokenizer.mask_id)
    masked = torch.where(to_random, random_ids, masked)
    return masked, labels


# --- batches ------------------------------------------------------------------------------
def _truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Drop tokens from the end of the longer segment until both fit in ``budget``."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return a, b


def pair_to_example(a: list[int], b: list[int], tokenizer: Tokenizer, max_len: int) -> tuple[list[int], list[int]]:
    """``[CLS] A [SEP] B [SEP]`` ids and token types, cut to ``max_len``."""
    a, b = _truncate_pair(a, b, max_len - 3)
    ids = [tokenizer.cls_id, *a, tokenizer.sep_id, *b, tokenizer.sep_id]
    return ids, [0] * (len(a) + 2) + [1] * (len(b) + 1)


def pad_batch(rows: list[list[int]], types: list[list[int]], pad_id: int) -> dict[str, Tensor]:
    """``input_ids``, ``token_type_ids``, ``attention_mask`` ``(B, L)``, right-padded."""
    length = max(map(len, rows))
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    token_type_ids = torch.zeros_like(input_ids)
    for i, (row, typ) in enumerate(zip(rows, types)):
        input_ids[i, : len(row)] = torch.tensor(row)
        token_type_ids[i, : len(typ)] = torch.tensor(typ)
    attention_mask = (torch.arange(length)[None, :] < torch.tensor([len(r) for r in rows])[:, None]).long()
    return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}


class MLMBatches:
    """Step-indexed MLM + NSP batches for the Trainer (see the module docstring)."""

    def __init__(self, documents: list[list[str]], tokenizer: Tokenizer, batch_size: int, max_len: int = 64, seed: int = 0):
        documents = [d for d in documents if d]
        if len(documents) < 2 or not any(len(d) >= 2 for d in documents):
            raise AttnlabError("documents: need at least 2 documents, one of them with 2 or more sentences")
        if max_len < 5:
            raise AttnlabError(f"max_len: expected >= 5 ([CLS] a [SEP] b [SEP]), got {max_len}")
        if tokenizer.mask_id is None or tokenizer.cls_id is None or tokenizer.sep_id is None:
            raise AttnlabError("tokenizer: MLM needs [MASK], [CLS] and [SEP] special tokens (use WordPieceTokenizer)")
        flat = tokenizer.encode_batch([s for d in documents for s in d])
        self.documents, start = [], 0
        for d in documents:  # per document, the token ids of each sentence
            self.documents.append(flat[start : start + len(d)])
            start += len(d)
        self.starts = [(i, j) for i, d in enumerate(self.documents) for j in range(len(d) - 1)]
        self.tokenizer, self.batch_size, self.max_len, self.seed = tokenizer, batch_size, max_len, seed

    def pair(self, rng: random.Random) -> tuple[list[int], list[int], int]:
        """``(A, B, next_sentence_label)``: 0 when B follows A, 1 when B is random."""
        doc, j = self.starts[rng.randrange(len(self.starts))]
        if rng.random() < 0.5:
            return self.documents[doc][j], self.documents[doc][j + 1], 0
        other = rng.randrange(len(self.documents) - 1)
        other += other >= doc  # any document but this one
        sentences = self.documents[other]
        return self.documents[doc][j], sentences[rng.randrange(len(sentences))], 1

    def batch(self, step: int) -> dict[str, Tensor]:
        rng = random.Random(self.seed * 1_000_003 + step)
        rows, types, nsp = [], [], []
        for _ in range(self.batch_size):
            a, b, label = self.pair(rng)
            ids, typ = pair_to_example(a, b, self.tokenizer, self.max_len)
            rows.append(ids)
            types.append(typ)
            nsp.append(label)
        batch = pad_batch(rows, types, self.tokenizer.pad_id)
        maskable = batch["attention_mask"].bool()
        for special in (self.tokenizer.cls_id, self.tokenizer.sep_id):
            maskable &= batch["input_ids"] != special
        generator = torch.Generator().manual_seed(rng.randrange(2**62))
        batch["input_ids"], batch["mlm_labels"] = mask_tokens(batch["input_ids"], maskable, self.tokenizer, generator)
        batch["next_sentence_label"] = torch.tensor(nsp)
        return batch
