"""Your own parallel data: a TSV file, two line-aligned text files, or a folder of splits.

Accepted inputs of :func:`load_parallel`:

* ``pairs.tsv`` - one ``source<TAB>target`` pair per line;
* ``train.src`` + ``train.tgt`` - two UTF-8 files, line ``n`` of one translates line ``n``
  of the other;
* a folder with ``train.tsv``, ``valid.tsv`` and ``test.tsv`` (+ optional Pharaoh
  ``{split}.align``), the layout :meth:`CorpusSplits.save` writes.

A TSV or a pair of text files can come with gold word alignments (``alignment_path``: a
Pharaoh file, ``"0-0 2-1 ..."`` per pair); they follow the pairs into the splits.

Empty lines (empty pairs) are skipped and counted; the count is in
``splits.train.skipped_empty`` and in ``describe()``. A line with a wrong number of
columns, a pair with one empty side, two files of different lengths or a file that is
not UTF-8 is an :class:`AttnlabError` naming ``file:line``. A single file is split into
train/valid/test by a permutation drawn from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from attnlab.data.corpus import CorpusSplits, ParallelCorpus, read_alignments, read_lines, read_tsv
from attnlab.errors import AttnlabError


def read_parallel_files(src_path: str | Path, tgt_path: str | Path) -> ParallelCorpus:
    """Pair line ``n`` of ``src_path`` with line ``n`` of ``tgt_path``."""
    src_lines, tgt_lines = read_lines(src_path), read_lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        raise AttnlabError(
            f"{src_path} has {len(src_lines)} lines but {tgt_path} has {len(tgt_lines)}; "
            "expected one target line per source line"
        )
    src, tgt, skipped = [], [], 0
    for n, (s, t) in enumerate(zip(src_lines, tgt_lines), start=1):
        s, t = " ".join(s.split()), " ".join(t.split())
        if not s and not t:
            skipped += 1
            continue
        if not s or not t:
            empty, other = (src_path, tgt_path) if not s else (tgt_path, src_path)
            raise AttnlabError(f"{empty}:{n}: empty line, but line {n} of {other} is not empty")
        src.append(s)
        tgt.append(t)
    return ParallelCorpus(src, tgt, skipped_empty=skipped)


def split_corpus(
    corpus: ParallelCorpus, valid_fraction: float = 0.05, test_fraction: float = 0.05, seed: int = 0
) -> CorpusSplits:
    """Deterministic random train/valid/test split (each held-out split gets >= 1 pair).

    The train split keeps the corpus' ``skipped_empty`` count so it is still reported.
    """
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 0.5:
            raise AttnlabError(f"{name}: expected a fraction in (0, 0.5), got {value}")
    n = len(corpus)
    num_valid, num_test = (max(1, round(n * f)) for f in (valid_fraction, test_fraction))
    if n - num_valid - num_test < 1:
        raise AttnlabError(f"corpus: {n} pairs are too few to split into train/valid/test")
    order = np.random.default_rng(seed).permutation(n).tolist()
    valid, test, train = order[:num_valid], order[num_valid : num_valid + num_test], order[num_valid + num_test :]
    splits = CorpusSplits(corpus.subset(train), corpus.subset(valid), corpus.subset(test))
    splits.train.skipped_empty = corpus.skipped_empty
    return splits


def load_parallel(
    path: str | Path,
    tgt_path: str | Path | None = None,
    *,
    alignment_path: str | Path | None = None,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
    seed: int = 0,
) -> CorpusSplits:
    """Load user data (a TSV, two parallel files, or a folder of splits) as train/valid/test.

    ``alignment_path``: Pharaoh alignments of a TSV or of the two files (a folder of splits
    has its own ``{split}.align``).
    """
    path = Path(path)
    if tgt_path is not None:
        corpus = read_parallel_files(path, tgt_path)
    elif path.is_dir():
        if alignment_path is not None:
            raise AttnlabError(f"alignment_path: {path} is a folder; put its alignments in {{train,valid,test}}.align")
        return CorpusSplits.load(path)
    elif path.is_file():
        corpus = read_tsv(path)
    else:
        raise AttnlabError(f"{path}: no such file or folder; expected a TSV file or a folder of splits")
    if alignment_path is not None:
        corpus.alignments = read_alignments(alignment_path, corpus, path)
    return split_corpus(corpus, valid_fraction, test_fraction, seed)
