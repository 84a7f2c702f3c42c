"""Real parallel text already on the machine: the gettext catalogs of installed software.

Every localised program ships its messages and their human translations as gettext
catalogs (``.mo`` compiled, ``.po`` text), one per program ("domain") and language::

    /usr/share/locale/zh_CN/LC_MESSAGES/coreutils.mo      "Open file" -> "打开文件"
    site-packages/<package>/locale/fr/LC_MESSAGES/*.mo   what Python packages ship

:func:`load_gettext` turns the catalogs of one language into the train/valid/test
:class:`~attnlab.data.corpus.CorpusSplits` the translators consume, English message ->
translation:

1. **find** the catalogs (:mod:`.finding`): the standard locale folders,
   ``/usr/share/*/locale`` and ``lang`` folders, installed Python packages' ``locale*``
   folders, plus the files and folders passed as ``catalogs``. Per program the best
   matching locale folder (:mod:`.locales`) is read once: ``zh_CN`` takes ``zh_CN``
   (UTF-8 first), then ``zh_Hans``/``zh_SG``, then ``zh``; ``fr`` takes ``fr``, then
   ``fr_FR``, then any ``fr_XX``; ``frp`` is another language.
2. **read** them with ``polib`` (:mod:`.reading`; both formats, the charset from the
   header): fuzzy and obsolete entries, untranslated ones and translator credits go;
   plural entries give the singular pair and, when the language has a separate plural
   form, the English plural with it.
3. **clean** (:mod:`.cleaning`): accelerator marks go (``_File``, ``&File``,
   ``文件(_F)``), entities are unescaped and whitespace collapsed; messages of
   placeholders and symbols only, pairs whose placeholders differ
   (:mod:`attnlab.data.placeholders`) and very long ones are dropped.
4. **split by catalog** (:mod:`.splitting`): catalogs of one family (``gtk20``/``gtk30``,
   ``iso_639*``) or sharing many messages form one group; whole groups go to valid or
   test, so a test program was never seen in training.
5. **deduplicate** (:mod:`.splitting`): one pair per English message in each split (the
   most common translation), and no held-out message that is also in train (or valid in
   test).

Every step counts what it did in one :class:`CleaningReport` (:mod:`.report`);
``python -m attnlab.data.gettext_corpus LANG`` prints it (:mod:`.__main__`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from attnlab.data.corpus import CorpusSplits, ParallelCorpus
from attnlab.data.gettext_corpus.cleaning import (
    clean_pairs,
    strip_accelerators,
    strip_pair_accelerators,
    unescape,
)
from attnlab.data.gettext_corpus.finding import (
    Catalog,
    available_languages,
    find_catalogs,
    standard_roots,
)
from attnlab.data.gettext_corpus.locales import PREFIX, Locale, is_gettext_spec, parse_spec
from attnlab.data.gettext_corpus.reading import RawPair, plural_indices, read_catalog
from attnlab.data.gettext_corpus.report import CleaningReport
from attnlab.data.gettext_corpus.splitting import (
    SPLITS,
    assign_groups,
    catalog_family,
    deduplicate,
    group_catalogs,
    split_pairs,
)
from attnlab.errors import AttnlabError

__all__ = [
    "Catalog", "CleaningReport", "GettextSplits", "Locale", "RawPair", "assign_groups", "available_languages",
    "catalog_family", "clean_pairs", "deduplicate", "find_catalogs", "group_catalogs", "is_gettext_spec",
    "load_gettext", "parse_spec", "plural_indices", "read_catalog", "standard_roots", "strip_accelerators",
    "strip_pair_accelerators", "unescape",
]


@dataclasses.dataclass
class GettextSplits(CorpusSplits):
    """:class:`CorpusSplits` plus the cleaning report and which catalogs each split holds."""

    report: CleaningReport = dataclasses.field(default_factory=CleaningReport)
    catalogs: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        held_out = ", ".join(self.catalogs.get("test", [])[:8])
        return f"{super().describe()}; test catalogs: {held_out}"


def closest_languages(name: str, languages: Counter[str], count: int = 3) -> list[str]:
    """Up to ``count`` language names of ``languages`` nearest ``name``: the same language
    first (``pt`` for ``pt_XX``), then the most similar spellings, most catalogs first."""
    import difflib

    base = name.split("_")[0]
    same = sorted((n for n in languages if n.split("_")[0] == base), key=lambda n: -languages[n])
    similar = difflib.get_close_matches(name, list(languages), n=count, cutoff=0.5)
    return list(dict.fromkeys([*same, *similar]))[:count]


def load_gettext(
    spec: str,
    catalogs: Iterable[str | Path] | None = None,
    *,
    roots: Iterable[str | Path] | None = None,
    max_chars: int = 200,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
    seed: int = 0,
) -> GettextSplits:
    """English -> ``spec``'s language pairs from the gettext catalogs, split by catalog.

    ``spec``: ``"gettext:zh_CN"`` (or ``"zh_CN"``); ``catalogs``: more files or folders;
    ``roots`` replaces the standard locations (``[]``: only ``catalogs``).
    """
    want = parse_spec(spec)
    found = find_catalogs(want, catalogs, roots)
    if not found:
        languages = available_languages(roots)
        close = closest_languages(want.name, languages)
        hint = f"closest here: {', '.join(f'{name} ({languages[name]} catalogs)' for name in close)}; " if close else ""
        raise AttnlabError(
            f"--data {PREFIX}{want.name}: no gettext catalogs for {want.name!r} on this machine ({hint}all "
            f"{len(languages)}: python -m attnlab.data.gettext_corpus --list); or add --catalogs PATH"
        )
    report = CleaningReport(language=want.name, catalogs=len(found))
    raw = [pair for catalog in found for pair in read_catalog(catalog, report)]
    given = [Path(c).resolve() for c in catalogs or ()]
    for broken in report.unreadable:  # a catalog of the machine may be skipped; one the user named may not
        path = Path(broken.split(" (", 1)[0]).resolve()
        if any(path == g or g in path.parents for g in given):
            raise AttnlabError(f"--catalogs: {broken}: not a readable .po/.mo catalog")
    by_split, split_of = split_pairs(clean_pairs(raw, report, max_chars), report, valid_fraction, test_fraction, seed)
    corpora = {name: ParallelCorpus([p.source for p in ps], [p.target for p in ps]) for name, ps in by_split.items()}
    report.kept = {name: len(c) for name, c in corpora.items()}
    if not all(report.kept.values()):
        raise AttnlabError(f"gettext:{want.name}: a split is empty after cleaning ({report.kept}); add catalogs with --catalogs")
    names = {name: sorted({c for c, s in split_of.items() if s == name}) for name in SPLITS}
    return GettextSplits(**corpora, report=report, catalogs=names)
