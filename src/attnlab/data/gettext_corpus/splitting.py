"""Splitting the pairs by catalog group, then deduplicating them.

Catalogs of one family (``gtk20``/``gtk30``, ``iso_639*``), sharing many messages, or
sharing many rare phrases (one source package under unrelated names, binutils' ``ld``/``gold``:
:mod:`~attnlab.data.gettext_corpus.near_copies`) form one group; whole groups go to valid or test, so a test program was never seen in
training. Then one pair per English message in each split (the most common translation),
and no held-out message that is also in train (or valid in test).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np

from attnlab.data.gettext_corpus.near_copies import shared_ngram_links
from attnlab.data.gettext_corpus.reading import RawPair
from attnlab.data.gettext_corpus.report import CleaningReport
from attnlab.errors import AttnlabError

SPLITS = ("train", "valid", "test")


def catalog_family(domain: str) -> str:
    """``gtk30-properties`` -> ``gtk``, ``postgres-15`` -> ``postgres``, ``iso_639-3`` -> ``iso``."""
    name = domain.lower().replace("-", "_").removesuffix("_properties")
    return re.sub(r"(?:_?\d+(?:\.\d+)*)+$", "", re.sub(r"(?:_\d+(?:\.\d+)*)+(?=_|$)", "", name)) or name


def group_catalogs(pairs: list[RawPair], overlap: float = 0.2, phrases: bool = True) -> list[list[str]]:
    """Catalogs of one family, sharing >= ``overlap`` of the smaller one's messages, or (``phrases``)
    linked by shared rare n-grams (:func:`~attnlab.data.gettext_corpus.near_copies.shared_ngram_links`), grouped."""
    sources: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        sources[p.catalog].add(p.source)
    parent = {c: c for c in sources}

    def root(c: str) -> str:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    family: dict[str, str] = {}
    for c in sorted(sources):
        parent[root(c)] = root(family.setdefault(catalog_family(c), c))
    holders: dict[str, list[str]] = defaultdict(list)
    for c in sorted(sources):
        for s in sources[c]:
            holders[s].append(c)
    shared: Counter[tuple[str, str]] = Counter()
    for cs in holders.values():
        shared.update((a, b) for i, a in enumerate(cs) for b in cs[i + 1 :])
    for (a, b), n in shared.items():
        if n >= overlap * min(len(sources[a]), len(sources[b])):
            parent[root(a)] = root(b)
    for a, b, _ in shared_ngram_links(pairs) if phrases else ():
        parent[root(a)] = root(b)
    groups: dict[str, list[str]] = defaultdict(list)
    for c in sorted(sources):
        groups[root(c)].append(c)
    return sorted(groups.values())


def assign_groups(groups: list[list[str]], sizes: Counter[str], valid_fraction: float,
                  test_fraction: float, seed: int) -> dict[str, str]:
    """Catalog -> split: whole groups, in a seeded random order, fill test then valid."""
    if len(groups) < 3:
        raise AttnlabError(
            f"gettext: {len(groups)} catalog group(s) found; splitting by catalog needs at least 3 "
            "(add catalogs with --catalogs)"
        )
    total = sum(sizes.values())
    targets = {"test": test_fraction * total, "valid": valid_fraction * total}
    filled = {"test": 0, "valid": 0}
    split_of: dict[str, str] = {}
    order = np.random.default_rng(seed).permutation(len(groups)).tolist()
    pending = []
    for index in order:
        group, size = groups[index], sum(sizes[c] for c in groups[index])
        name = next((s for s in ("test", "valid") if filled[s] < targets[s] and filled[s] + size <= 1.5 * targets[s]), None)
        if name is None:
            pending.append((size, index))
            continue
        filled[name] += size
        split_of.update((c, name) for c in group)
    pending.sort()
    for name in ("test", "valid"):  # a held-out split left empty takes the smallest group left
        if not filled[name] and len(pending) > 1:
            size, index = pending.pop(0)
            filled[name] += size
            split_of.update((c, name) for c in groups[index])
    for _, index in pending:
        split_of.update((c, "train") for c in groups[index])
    return split_of


def deduplicate(pairs: list[RawPair]) -> list[RawPair]:
    """One pair per source: its most common target (the first one seen on a tie)."""
    targets: dict[str, Counter[str]] = defaultdict(Counter)
    first: dict[str, RawPair] = {}
    for p in pairs:
        targets[p.source][p.target] += 1
        first.setdefault(p.source, p)
    return [RawPair(s, targets[s].most_common(1)[0][0], first[s].catalog) for s in first]


def split_pairs(pairs: list[RawPair], report: CleaningReport, valid_fraction: float, test_fraction: float,
                seed: int, phrases: bool = True) -> tuple[dict[str, list[RawPair]], dict[str, str]]:
    """Split name -> its deduplicated pairs, and catalog -> split name; removals counted."""
    groups = group_catalogs(pairs, phrases=phrases)
    split_of = assign_groups(groups, Counter(p.catalog for p in pairs), valid_fraction, test_fraction, seed)
    by_split = {name: deduplicate([p for p in pairs if split_of[p.catalog] == name]) for name in SPLITS}
    report.remove("duplicate messages", len(pairs) - sum(len(v) for v in by_split.values()))
    seen = {p.source for p in by_split["train"]}
    for name in ("test", "valid"):
        before = len(by_split[name])
        by_split[name] = [p for p in by_split[name] if p.source not in seen]
        report.remove("held-out message seen in a training (or test) catalog", before - len(by_split[name]))
        seen |= {p.source for p in by_split[name]}
    return by_split, split_of
