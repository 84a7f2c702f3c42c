"""Parallel corpora: sentence pairs, optional gold word alignments, and their files.

A :class:`ParallelCorpus` holds whitespace-tokenized sentence pairs::

    src[n]         "the small cat sees a dog ."
    tgt[n]         "vobin nivera vini gaves ."
    alignments[n]  {(0, 0), (2, 0), (1, 1), (5, 2), (3, 3), (6, 4)}   # (src word, tgt word)

Alignment pairs index ``src[n].split()`` and ``tgt[n].split()``. On disk a corpus is a
TSV file (``source<TAB>target`` per line) and, when it has gold alignments, a file in
the Pharaoh format of fast_align/GIZA++ (``"0-0 2-0 1-1 ..."`` per line, ``i-j`` =
source word ``i`` aligned to target word ``j``). :class:`CorpusSplits` groups
train/valid/test and saves them as ``{split}.tsv`` (+ ``{split}.align``) in a folder.
Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.io import write_text
from attnlab.validation import read_text

Alignment = set[tuple[int, int]]
SPLITS = ("train", "valid", "test")


def format_pharaoh(alignment: Alignment) -> str:
    """``{(0, 1), (2, 0)}`` -> ``"0-1 2-0"`` (sorted by source, then target index)."""
    return " ".join(f"{i}-{j}" for i, j in sorted(alignment))


def parse_pharaoh(line: str, where: str = "alignment") -> Alignment:
    """``"0-1 2-0"`` -> ``{(0, 1), (2, 0)}``; ``where`` (e.g. ``file:line``) names bad input."""
    pairs = set()
    for item in line.split():
        i, sep, j = item.partition("-")
        if not (sep and i.isdigit() and j.isdigit()):
            raise AttnlabError(f"{where}: expected Pharaoh pairs like '0-1', got {item!r}")
        pairs.add((int(i), int(j)))
    return pairs


@dataclasses.dataclass
class ParallelCorpus:
    """Sentence pairs (whitespace-tokenized strings) with optional gold alignments."""

    src: list[str]
    tgt: list[str]
    alignments: list[Alignment] | None = None
    skipped_empty: int = 0  # empty lines the reader skipped, reported by ``describe``

    def __post_init__(self) -> None:
        if len(self.src) != len(self.tgt):
            raise AttnlabError(f"ParallelCorpus: {len(self.src)} source but {len(self.tgt)} target sentences")
        if self.alignments is not None and len(self.alignments) != len(self.src):
            raise AttnlabError(
                f"ParallelCorpus: {len(self.alignments)} alignments for {len(self.src)} sentence pairs"
            )

    def __len__(self) -> int:
        return len(self.src)

    def subset(self, indices: list[int]) -> ParallelCorpus:
        aligned = None if self.alignments is None else [self.alignments[i] for i in indices]
        return ParallelCorpus([self.src[i] for i in indices], [self.tgt[i] for i in indices], aligned)

    def describe(self) -> str:
        """One line: pair count, mean lengths and skipped empty lines."""
        n = max(len(self), 1)
        src_len = sum(len(s.split()) for s in self.src) / n
        tgt_len = sum(len(t.split()) for t in self.tgt) / n
        text = f"{len(self)} pairs, mean length {src_len:.1f} -> {tgt_len:.1f} words"
        return text + (f", {self.skipped_empty} empty lines skipped" if self.skipped_empty else "")

    def save(self, tsv_path: str | Path, alignment_path: str | Path | None = None) -> None:
        """Write ``source<TAB>target`` lines, and the Pharaoh alignments when a path is given."""
        for n, (s, t) in enumerate(zip(self.src, self.tgt)):
            if "\t" in s + t or "\n" in s + t:
                raise AttnlabError(f"ParallelCorpus.save: pair {n} contains a tab or newline")
        write_text(tsv_path, "".join(f"{s}\t{t}\n" for s, t in zip(self.src, self.tgt)))
        if alignment_path is not None:
            if self.alignments is None:
                raise AttnlabError("alignment_path: this corpus has no alignments to save")
            write_text(alignment_path, "".join(format_pharaoh(a) + "\n" for a in self.alignments))

    @classmethod
    def load(cls, tsv_path: str | Path, alignment_path: str | Path | None = None) -> ParallelCorpus:
        """Read a TSV corpus (see :func:`read_tsv`) and, when given, its Pharaoh alignments."""
        corpus = read_tsv(tsv_path)
        if alignment_path is not None:
            corpus.alignments = read_alignments(alignment_path, corpus, tsv_path)
        return corpus


@dataclasses.dataclass
class CorpusSplits:
    """Train/valid/test corpora; ``save``/``load`` use ``{split}.tsv`` and ``{split}.align``."""

    train: ParallelCorpus
    valid: ParallelCorpus
    test: ParallelCorpus

    def items(self) -> list[tuple[str, ParallelCorpus]]:
        return [(name, getattr(self, name)) for name in SPLITS]

    def describe(self) -> str:
        return "; ".join(f"{name}: {corpus.describe()}" for name, corpus in self.items())

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        for name, corpus in self.items():
            aligned = directory / f"{name}.align" if corpus.alignments is not None else None
            corpus.save(directory / f"{name}.tsv", aligned)

    @classmethod
    def load(cls, directory: str | Path) -> CorpusSplits:
        directory = Path(directory)
        loaded = {}
        for name in SPLITS:
            aligned = directory / f"{name}.align"
            loaded[name] = ParallelCorpus.load(directory / f"{name}.tsv", aligned if aligned.is_file() else None)
        return cls(**loaded)


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (no line ends); bad bytes are reported as ``file:line``."""
    text = read_text(path, strict=True)  # UTF-8, no NUL bytes; errors name the line
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_alignments(path: str | Path, corpus: ParallelCorpus, corpus_name: str | Path = "the corpus") -> list[Alignment]:
    """Pharaoh alignments of ``corpus``, one line per pair; links must index words of the pair."""
    lines = read_lines(path)
    if corpus.skipped_empty or len(lines) != len(corpus):
        raise AttnlabError(
            f"{path}: {len(lines)} lines but {corpus_name} has {len(corpus)} pairs"
            f" and {corpus.skipped_empty} empty lines; expected one alignment line per pair"
        )
    alignments = []
    for n, (line, src, tgt) in enumerate(zip(lines, corpus.src, corpus.tgt), start=1):
        pairs = parse_pharaoh(line, f"{path}:{n}")
        num_src, num_tgt = len(src.split()), len(tgt.split())
        bad = [f"{i}-{j}" for i, j in sorted(pairs) if i >= num_src or j >= num_tgt]
        if bad:
            raise AttnlabError(f"{path}:{n}: link {bad[0]} is outside the pair's {num_src} source and {num_tgt} target words")
        alignments.append(pairs)
    return alignments


def read_tsv(path: str | Path) -> ParallelCorpus:
    """Read ``source<TAB>target`` lines; empty lines are skipped and counted.

    A line with another number of columns, or an empty side, is an error naming
    ``file:line``. Runs of whitespace inside a sentence become single spaces.
    """
    src, tgt, skipped = [], [], 0
    for n, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            skipped += 1
            continue
        columns = line.split("\t")
        if len(columns) != 2:
            raise AttnlabError(
                f"{path}:{n}: expected 2 tab-separated columns (source<TAB>target), got {len(columns)}"
            )
        source, target = (" ".join(c.split()) for c in columns)
        if not source or not target:
            raise AttnlabError(f"{path}:{n}: empty {'source' if not source else 'target'} sentence")
        src.append(source)
        tgt.append(target)
    if not src:
        raise AttnlabError(f"{path}: no source<TAB>target lines in the file")
    return ParallelCorpus(src, tgt, skipped_empty=skipped)
