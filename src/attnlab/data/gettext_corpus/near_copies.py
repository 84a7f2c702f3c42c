"""Programs of one source package under unrelated names, and near-copies across the split.

binutils ships ``ld``, ``gold``, ``gas`` and ``bfd``; PostgreSQL ships ``libpq5`` and
``plpgsql`` beside ``postgres``; apt ships ``libapt-pkg``. Their names share no family and
they share few *identical* messages, but their messages are written from the same phrases
("relocation truncated to fit", "could not connect to server"). Catalogs are linked when
they share many *rare* word n-grams::

    G(c)       = { word n-grams of c's English messages }     (placeholders -> PH, lower case)
    rare       = n-grams found in at most ``max_df`` catalogs  (common UI phrases say nothing)
    shared     = |G(a) ∩ G(b) ∩ rare|
    link(a, b) = shared >= min_shared  and  shared >= min_share * min(|G(a)|, |G(b)|)

(``n = 4``, ``max_df = 5``, ``min_shared = 20``, ``min_share = 0.02``; docs/real_language.md
shows the pairs it links and what the split keeps apart). :func:`near_copy_count` measures
the result: held-out messages whose closest training message is a near-copy (cosine of
TF-IDF character 2-4-grams >= 0.9: "Could not open file %s" and "Could not open file %s: %s").
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from attnlab.data.gettext_corpus.reading import RawPair
from attnlab.data.placeholders import PLACEHOLDER


def message_ngrams(text: str, n: int = 4) -> set[str]:
    """The word ``n``-grams of a message, placeholders as ``PH``, lower case."""
    words = re.findall(r"\w+", PLACEHOLDER.sub(" PH ", text.lower()))
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def shared_ngram_links(pairs: Sequence[RawPair], *, n: int = 4, max_df: int = 5, min_shared: int = 20,
                       min_share: float = 0.02) -> list[tuple[str, str, int]]:
    """``(catalog a, catalog b, shared rare n-grams)`` of every linked pair (module docstring)."""
    grams: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        grams[p.catalog] |= message_ngrams(p.source, n)
    holders: dict[str, list[str]] = defaultdict(list)
    for catalog in sorted(grams):
        for gram in grams[catalog]:
            holders[gram].append(catalog)
    shared: Counter[tuple[str, str]] = Counter()
    for catalogs in holders.values():
        if len(catalogs) <= max_df:
            shared.update(itertools.combinations(catalogs, 2))
    return sorted((a, b, k) for (a, b), k in shared.items()
                  if k >= min_shared and k >= min_share * min(len(grams[a]), len(grams[b])))


def count_near_copies(splits, report=None) -> dict[str, tuple[int, int]]:
    """``{"test": (near-copies, messages), "valid": ...}`` of a split's held-out messages (a minute
    on a busy 2-core machine, so the report asks for it; training does not); also recorded in
    ``report.near_copies`` when a report is given."""
    counts = {name: (near_copy_count(splits.train.src, corpus.src), len(corpus))
              for name, corpus in (("test", splits.test), ("valid", splits.valid))}
    if report is not None:
        report.near_copies = counts
    return counts


def near_copy_count(train: Sequence[str], held_out: Sequence[str], threshold: float = 0.9,
                    chunk: int = 2048) -> int:
    """How many ``held_out`` messages have a training message with cosine >= ``threshold``
    (TF-IDF of character 2-4-grams, fitted on train)."""
    if not train or not held_out:
        return 0
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=False, sublinear_tf=True)
    train_m = vectorizer.fit_transform(train)
    held_m = vectorizer.transform(held_out)
    count = 0
    for start in range(0, held_m.shape[0], chunk):
        best = (held_m[start : start + chunk] @ train_m.T).max(axis=1).toarray().ravel()  # (chunk,)
        count += int(np.sum(best >= threshold))
    return count
