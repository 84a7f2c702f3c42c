"""Translation batches grouped by length, indexed by the training step.

:class:`TranslationBatches` is a ``attnlab.training.BatchSource``: ``batch(step)`` is a
pure function of ``(seed, step)``, so a resumed run sees exactly the batches of an
uninterrupted one. The corpus is encoded once and kept as flat id tensors.

An epoch ``e`` is planned from ``numpy.random.default_rng([seed, e])``:

1. draw a permutation of the pairs;
2. cut it into *pools* of about ``pool_batches`` batches and sort each pool by length
   (source, then target), so a batch holds pairs of similar length and little padding;
3. cut each sorted pool into batches of at most ``batch_size`` pairs and at most
   ``max_tokens`` padded tokens (``rows * longest row``);
4. shuffle the order of the batches.

Steps run through epoch 0's batches, then epoch 1's, and so on.

``token_dropout`` p (Sennrich & Zhang 2019's word dropout, on subword tokens): each source
token of a training batch is replaced by ``unk_id`` with probability p, drawn from
``numpy.random.default_rng([seed, step, 1])``, so the model learns to translate around
what it cannot read and leans less on any one token; ``collate``/``in_order``
(evaluation) never drop. With ``batch_size``
alone every epoch has the same number of batches; with ``max_tokens`` the count can
differ a little between epochs, and the step -> epoch map is accumulated as needed.

Each batch (B pairs, Ls = longest source, Lt = longest target + 1)::

    src_ids  (B, Ls)  source ids, padded with the source pad id
    tgt_in   (B, Lt)  BOS + target ids     (decoder input, teacher forcing)
    tgt_out  (B, Lt)  target ids + EOS     (what the decoder must predict)
    align    (B, Lt, Ls)  only with ``alignments=True``: row t is the gold-alignment
                      distribution over source tokens of the token ``tgt_out[:, t]``
                      (:func:`attnlab.attention.guided_alignment.alignment_targets`;
                      EOS, padding and unlinked tokens: zero rows)
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from functools import lru_cache

import numpy as np
import torch

from attnlab.attention.guided_alignment import alignment_targets
from attnlab.data.corpus import ParallelCorpus
from attnlab.data.tokenizer import Tokenizer
from attnlab.errors import AttnlabError

Batch = dict[str, torch.Tensor]


class EncodedSide:
    """One side of the corpus encoded once: ids of all sentences in one flat tensor."""

    def __init__(self, ids: list[list[int]]):
        self.lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths
        self.flat = torch.tensor([i for x in ids for i in x] or [0], dtype=torch.long)

    def gather(self, rows: torch.Tensor, width: int, shift: int, pad: int) -> torch.Tensor:
        """``(B, width)`` ids of ``rows`` starting at column ``shift``, ``pad`` elsewhere."""
        columns = torch.arange(width) - shift  # (width,)
        lengths, offsets = self.lengths[rows, None], self.offsets[rows, None]  # (B, 1)
        inside = (columns >= 0) & (columns < lengths)  # (B, width)
        positions = (offsets + columns).clamp(0, self.flat.numel() - 1)  # (B, width)
        return torch.where(inside, self.flat[positions], pad)


class TranslationBatches:
    """Length-grouped ``src_ids``/``tgt_in``/``tgt_out`` batches of a parallel corpus.

    Give ``batch_size`` (pairs per batch), ``max_tokens`` (padded tokens per batch) or
    both; ``max_len`` drops pairs whose source or target (+ BOS/EOS) is longer, counted
    in ``num_dropped``. ``pool_batches`` sets how many batches' worth of pairs are
    sorted by length together (1 = no length grouping). ``alignments=True`` adds the
    ``align`` targets of guided alignment training (the corpus must have gold alignments).
    """

    def __init__(
        self,
        corpus: ParallelCorpus,
        src_tokenizer: Tokenizer,
        tgt_tokenizer: Tokenizer,
        *,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        max_len: int | None = None,
        pool_batches: int = 50,
        seed: int = 0,
        alignments: bool = False,
        token_dropout: float = 0.0,
        unk_id: int | None = None,
    ):
        if batch_size is None and max_tokens is None:
            raise AttnlabError("TranslationBatches: give batch_size, max_tokens or both")
        for name, value in (("batch_size", batch_size), ("max_tokens", max_tokens), ("max_len", max_len)):
            if value is not None and value < 1:
                raise AttnlabError(f"TranslationBatches: {name} must be >= 1, got {value}")
        if not 0 <= token_dropout < 1 or (token_dropout and unk_id is None):
            raise AttnlabError(f"TranslationBatches: token_dropout must be in [0, 1) with an unk_id, got {token_dropout}")
        self.token_dropout, self.unk_id = token_dropout, unk_id
        if pool_batches < 1:
            raise AttnlabError(f"TranslationBatches: pool_batches must be >= 1, got {pool_batches}")
        self.src_pad, self.tgt_pad = src_tokenizer.pad_id, tgt_tokenizer.pad_id
        self.bos, self.eos = tgt_tokenizer.bos_id, tgt_tokenizer.eos_id
        src, tgt = src_tokenizer.encode_batch(corpus.src), tgt_tokenizer.encode_batch(corpus.tgt)
        keep = [n for n in range(len(corpus)) if max_len is None or max(len(src[n]), len(tgt[n]) + 1) <= max_len]
        self.num_dropped = len(corpus) - len(keep)  # pairs longer than max_len
        if not keep:
            raise AttnlabError(f"corpus: no pair fits max_len={max_len} (of {len(corpus)} pairs)")
        self.indices = keep  # position in the batch source -> index in the corpus
        self.src = EncodedSide([src[n] for n in keep])
        self.tgt = EncodedSide([tgt[n] for n in keep])
        self.word_links = self._word_links(corpus, src_tokenizer, tgt_tokenizer) if alignments else None
        self.batch_size, self.max_tokens, self.seed = batch_size, max_tokens, seed
        # padded width a pair costs: the longer of its source and its target (+ BOS/EOS)
        self.cost = torch.maximum(self.src.lengths, self.tgt.lengths + 1).numpy()
        rows_per_batch = batch_size or max(1, max_tokens // int(self.cost.mean()))
        self.pool_size = pool_batches * rows_per_batch
        self._epoch_ends: list[int] = []  # cumulative batch counts of epochs 0, 1, ...
        self._plan = lru_cache(maxsize=2)(self._draw_plan)

    def __len__(self) -> int:
        return len(self.indices)

    def _word_links(self, corpus: ParallelCorpus, src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer):
        """Per kept pair: its gold links and the word index of every source and target token."""
        if corpus.alignments is None:
            raise AttnlabError("alignments: the corpus has no gold word alignments (e.g. a TSV without its .align file)")
        src = [corpus.src[n] for n in self.indices]
        tgt = [corpus.tgt[n] for n in self.indices]
        links = [corpus.alignments[n] for n in self.indices]
        return links, src_tokenizer.word_ids_batch(src), tgt_tokenizer.word_ids_batch(tgt)

    @property
    def steps_per_epoch(self) -> int:
        """Batches in epoch 0 (in every epoch when sized by ``batch_size`` only)."""
        return len(self._plan(0))

    def _cut(self, rows: np.ndarray) -> list[np.ndarray]:
        """Cut length-sorted ``rows`` into batches within batch_size / max_tokens."""
        batches, start, widest = [], 0, 0
        for end, row in enumerate(rows):
            widest_with = max(widest, self.cost[row])
            full = self.batch_size is not None and end - start >= self.batch_size
            too_many = self.max_tokens is not None and (end - start + 1) * widest_with > self.max_tokens
            if end > start and (full or too_many):
                batches.append(rows[start:end])
                start, widest_with = end, self.cost[row]
            widest = widest_with
        batches.append(rows[start:])
        return batches

    def _draw_plan(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self))
        batches = []
        for start in range(0, len(order), self.pool_size):
            pool = order[start : start + self.pool_size]
            key = self.src.lengths.numpy()[pool] * 100_000 + self.tgt.lengths.numpy()[pool]
            batches += self._cut(pool[np.argsort(key, kind="stable")])
        return [batches[i] for i in rng.permutation(len(batches))]

    def locate(self, step: int) -> tuple[int, int]:
        """``(epoch, batch index within the epoch)`` of ``step``."""
        if step < 0:
            raise AttnlabError(f"TranslationBatches.batch: step must be >= 0, got {step}")
        while not self._epoch_ends or self._epoch_ends[-1] <= step:
            previous = self._epoch_ends[-1] if self._epoch_ends else 0
            self._epoch_ends.append(previous + len(self._plan(len(self._epoch_ends))))
        epoch = bisect.bisect_right(self._epoch_ends, step)
        return epoch, step - (self._epoch_ends[epoch - 1] if epoch else 0)

    def rows(self, step: int) -> list[int]:
        """Corpus indices of the pairs in batch ``step``."""
        epoch, index = self.locate(step)
        return [self.indices[r] for r in self._plan(epoch)[index].tolist()]

    def batch(self, step: int) -> Batch:
        epoch, index = self.locate(step)
        batch = self.collate(torch.from_numpy(self._plan(epoch)[index]))
        if self.token_dropout:
            src = batch["src_ids"]  # (B, Ls)
            drop = np.random.default_rng([self.seed, step, 1]).random(tuple(src.shape)) < self.token_dropout
            batch["src_ids"] = torch.where(torch.from_numpy(drop) & (src != self.src_pad), self.unk_id, src)
        return batch

    def collate(self, rows: torch.Tensor) -> Batch:
        """The padded tensors of positions ``rows`` (of the kept pairs)."""
        src_width = int(self.src.lengths[rows].max())
        tgt_width = int(self.tgt.lengths[rows].max()) + 1
        tgt_in = self.tgt.gather(rows, tgt_width, shift=1, pad=self.tgt_pad)
        tgt_in[:, 0] = self.bos
        tgt_out = self.tgt.gather(rows, tgt_width, shift=0, pad=self.tgt_pad)
        tgt_out[torch.arange(len(rows)), self.tgt.lengths[rows]] = self.eos
        batch = {"src_ids": self.src.gather(rows, src_width, shift=0, pad=self.src_pad),
                 "tgt_in": tgt_in, "tgt_out": tgt_out}
        if self.word_links is not None:
            links, src_words, tgt_words = ([part[r] for r in rows.tolist()] for part in self.word_links)
            batch["align"] = alignment_targets(links, src_words, tgt_words, src_width, tgt_width)  # (B, Lt, Ls)
        return batch

    def in_order(self, batch_size: int | None = None) -> Iterator[tuple[list[int], Batch]]:
        """Every kept pair once, sorted by source length, for evaluation and decoding.

        Yields ``(corpus indices, batch)``; ``batch_size`` defaults to the training one.
        """
        size = batch_size or self.batch_size or max(1, self.max_tokens // int(self.cost.max()))
        order = torch.argsort(self.src.lengths, stable=True)
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            yield [self.indices[r] for r in rows.tolist()], self.collate(rows)

    def count_tokens(self, batch: Batch) -> int:
        """Target tokens (EOS included) in a batch: the Trainer's ``count_tokens``."""
        return int((batch["tgt_out"] != self.tgt_pad).sum())
