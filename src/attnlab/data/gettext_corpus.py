"""Real parallel text already on the machine: the gettext catalogs of installed software.

Every localised program ships its messages and their human translations as gettext
catalogs (``.mo`` compiled, ``.po`` text), one per program ("domain") and language::

    /usr/share/locale/zh_CN/LC_MESSAGES/coreutils.mo      "Open file" -> "打开文件"
    site-packages/<package>/locale/fr/LC_MESSAGES/*.mo   what Python packages ship

:func:`load_gettext` turns the catalogs of one language into the train/valid/test
:class:`~attnlab.data.corpus.CorpusSplits` the translators consume, English message ->
translation:

1. **find** the catalogs: the standard locale folders, ``/usr/share/*/locale`` and
   ``lang`` folders, installed Python packages' ``locale*`` folders, plus the files and
   folders passed as ``catalogs``. Per program the best matching locale folder is read
   once: ``zh_CN`` takes ``zh_CN`` (UTF-8 first), then ``zh_Hans``/``zh_SG``, then ``zh``;
   ``fr`` takes ``fr``, then ``fr_FR``, then any ``fr_XX``; ``frp`` is another language.
2. **read** them with ``polib`` (both formats; the charset comes from the header).
3. **clean** (:class:`CleaningReport` counts what each step removed): fuzzy and obsolete
   entries, untranslated ones, translator credits; plural entries give the singular pair
   and, when the language has a separate plural form, the English plural with it;
   accelerator marks go (``_File``, ``&File``, ``文件(_F)``), entities are unescaped and
   whitespace collapsed; messages of placeholders and symbols only, pairs whose
   placeholders differ (:mod:`attnlab.data.placeholders`) and very long ones are dropped.
4. **split by catalog**: catalogs of one family (``gtk20``/``gtk30``, ``iso_639*``) or
   sharing many messages form one group; whole groups go to valid or test, so a test
   program was never seen in training.
5. **deduplicate**: one pair per English message in each split (the most common
   translation), and no held-out message that is also in train (or valid in test).
"""

from __future__ import annotations

import dataclasses
import gettext
import html
import re
import site
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polib

from attnlab.data.corpus import CorpusSplits, ParallelCorpus
from attnlab.data.placeholders import placeholders_match, split_placeholders
from attnlab.errors import AttnlabError

PREFIX = "gettext:"
STANDARD_ROOTS = ("/usr/share/locale", "/usr/share/locale-langpack", "/usr/local/share/locale")
ROOT_PATTERNS = ("/usr/share/*/locale", "/usr/share/*/lang", "/usr/share/*/*/lang", "/opt/*/share/locale")
PACKAGE_PATTERNS = ("*/locale", "*/locales", "*/*/locale", "*/*/*/locale")  # under site-packages
SUFFIXES = (".po", ".mo")  # .po first: it keeps the fuzzy flags that msgfmt drops
CREDITS = {"translator-credits", "translator_credits", "translators", "translator credits"}
_LOCALE = re.compile(r"^([a-z]{2,3})(?:_([A-Z]{2}|\d{3}|[A-Z][a-z]{3}))?(?:\.([\w-]+))?(?:@(\w+))?$")
_SCRIPTS = {"Hans": {"CN", "SG", "Hans"}, "Hant": {"TW", "HK", "MO", "Hant"}}  # zh: script -> territories


@dataclasses.dataclass(frozen=True)
class Locale:
    """``zh_CN.UTF-8@mod`` -> language ``zh``, territory ``CN``, codeset, modifier."""

    language: str
    territory: str | None = None
    codeset: str | None = None
    modifier: str | None = None

    @classmethod
    def parse(cls, name: str) -> Locale | None:
        m = _LOCALE.match(name)
        return None if m is None else cls(*m.groups())

    @property
    def name(self) -> str:
        return self.language + (f"_{self.territory}" if self.territory else "") + (f"@{self.modifier}" if self.modifier else "")

    def _script(self) -> str | None:
        return next((s for s, members in _SCRIPTS.items() if self.territory in members), None)

    def match(self, found: Locale) -> int:
        """How well a catalog folder ``found`` serves this request: 0 (not at all) to 32 (exact, UTF-8)."""
        if found.language != self.language or found.modifier != self.modifier:
            return 0
        wanted = self.territory or ("CN" if self.language == "zh" else None)
        if found.territory == wanted:
            score = 30
        elif self.language == "zh" and found.territory and Locale("zh", wanted)._script() == found._script():
            score = 20
        elif found.territory is None:
            score = 10 if self.language != "zh" or Locale("zh", wanted)._script() == "Hans" else 0
        else:  # another territory of the language (fr_FR first, then fr_CA) for fr, never for fr_FR
            score = 5 + (found.territory == self.language.upper()) if self.territory is None and self.language != "zh" else 0
        codeset = (found.codeset or "").lower().replace("-", "")
        return score + (2 if codeset == "utf8" else 1 if not codeset else 0) if score else 0


@dataclasses.dataclass(frozen=True)
class Catalog:
    path: Path
    domain: str  # the program: the file name without suffix (or the project folder for fr.po)
    locale: str  # the folder or file name it was found under ("" when unknown)


def parse_spec(spec: str) -> Locale:
    """``"gettext:zh_CN"`` or ``"zh_CN"`` -> the requested :class:`Locale`."""
    name = spec.removeprefix(PREFIX)
    locale = Locale.parse(name)
    if locale is None or locale.codeset:
        raise AttnlabError(f"--data {spec}: expected a language like gettext:zh_CN, gettext:fr or gettext:de")
    return locale


def is_gettext_spec(data: str | None) -> bool:
    return data is not None and data.startswith(PREFIX)


def standard_roots() -> list[Path]:
    """Existing locale folders of the system and of installed Python packages."""
    found = [Path(p) for p in STANDARD_ROOTS]
    found += [Path(p) for pattern in ROOT_PATTERNS for p in sorted(Path("/").glob(pattern.lstrip("/")))]
    packages = {Path(p) for p in [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
                if p.endswith(("site-packages", "dist-packages"))}
    packages |= set(Path("/usr/lib/python3").glob("dist-packages"))
    for base in sorted(p for p in packages if p.is_dir()):
        found += [p for pattern in PACKAGE_PATTERNS for p in sorted(base.glob(pattern))]
    return list(dict.fromkeys(p for p in found if p.is_dir()))


def _root_catalogs(root: Path) -> Iterable[Catalog]:
    """``root/<locale>/LC_MESSAGES/<domain>.{po,mo}``."""
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        messages = folder / "LC_MESSAGES"
        if Locale.parse(folder.name) is None or not messages.is_dir():
            continue
        for path in sorted(messages.iterdir()):
            if path.suffix in SUFFIXES and path.is_file():
                yield Catalog(path, path.stem, folder.name)


def _user_catalogs(path: Path) -> Iterable[Catalog]:
    """Catalogs under a ``--catalogs`` file or folder: any layout, any depth."""
    if not path.exists():
        raise AttnlabError(f"--catalogs {path}: no such file or folder")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    for file in files:
        if file.parent.name == "LC_MESSAGES":  # <locale>/LC_MESSAGES/<domain>.mo
            yield Catalog(file, file.stem, file.parent.parent.name)
        elif Locale.parse(file.stem):  # a project's po/ folder: po/fr.po, po/zh_CN.po
            yield Catalog(file, file.parent.parent.name if file.parent.name == "po" else file.parent.name, file.stem)
        else:
            yield Catalog(file, file.stem, _header_language(file))


def _header_language(path: Path) -> str:
    try:
        return _open(path).metadata.get("Language", "").strip()
    except (OSError, ValueError, UnicodeError):
        return ""


def find_catalogs(language: str | Locale, catalogs: Iterable[str | Path] | None = None,
                  roots: Iterable[str | Path] | None = None) -> list[Catalog]:
    """The catalogs of ``language``: per (folder, program) the best matching locale.

    ``roots`` replaces the standard locations (``[]``: only ``catalogs``); ``catalogs``
    adds files or folders. A catalog file named explicitly is used whatever its locale.
    """
    want = language if isinstance(language, Locale) else parse_spec(language)
    candidates: list[tuple[Catalog, bool]] = []
    for root in standard_roots() if roots is None else [Path(r) for r in roots]:
        candidates += [(c, False) for c in _root_catalogs(root)]
    for path in catalogs or ():
        mine = [(c, Path(path).is_file()) for c in _user_catalogs(Path(path))]
        if not any(explicit or _serves(want, c) for c, explicit in mine):
            raise AttnlabError(f"--catalogs {path}: no .po/.mo catalog for {want.name!r} in it "
                               f"({len(mine)} catalog file(s) of other or unknown languages)")
        candidates += mine
    best: dict[tuple[Path, str], tuple[tuple[int, bool], Catalog]] = {}
    for catalog, explicit in candidates:
        found = Locale.parse(catalog.locale)
        score = 100 if explicit else (want.match(found) if found else 0)
        rank = (score, catalog.path.suffix == ".po")  # a .po beside its .mo: it keeps the fuzzy flags
        place = catalog.path.parent.parent.parent if catalog.path.parent.name == "LC_MESSAGES" else catalog.path.parent
        key = (place, catalog.domain) if not explicit else (catalog.path, catalog.domain)
        if score and rank > best.get(key, ((0, False), None))[0]:
            best[key] = (rank, catalog)
    return sorted((c for _, c in best.values()), key=lambda c: (str(c.path.parent), c.domain))


def _serves(want: Locale, catalog: Catalog) -> bool:
    found = Locale.parse(catalog.locale) if catalog.locale else None
    return bool(found and want.match(found))


def available_languages(roots: Iterable[str | Path] | None = None) -> Counter[str]:
    """Catalog count per locale name (codeset removed) under the standard locations."""
    counts: Counter[str] = Counter()
    for root in standard_roots() if roots is None else [Path(r) for r in roots]:
        for catalog in _root_catalogs(root):
            counts[Locale.parse(catalog.locale).name] += 1
    return counts


def _open(path: Path) -> polib._BaseFile:
    return polib.mofile(str(path)) if path.suffix == ".mo" else polib.pofile(str(path))


def plural_indices(plural_forms: str | None) -> tuple[int, int | None]:
    """Which ``msgstr[i]`` translates n = 1 and which n = 5 (``None``: no separate plural)."""
    m = re.search(r"nplurals\s*=\s*(\d+)\s*;\s*plural\s*=\s*([^;]+)", plural_forms or "")
    if m is None:
        return 0, 1  # the gettext default is English's: msgstr[0] singular, msgstr[1] plural
    if int(m.group(1)) == 1:
        return 0, None
    try:
        rule = gettext.c2py(m.group(2).strip())
        one, many = rule(1), rule(5)
    except (ValueError, SyntaxError):
        return 0, 1
    return one, (many if many != one else None)


@dataclasses.dataclass
class RawPair:
    source: str
    target: str
    catalog: str  # the domain


def read_catalog(catalog: Catalog, report: CleaningReport) -> list[RawPair]:
    """The translated pairs of one catalog; fuzzy, obsolete, empty and plural entries counted."""
    try:
        entries = _open(catalog.path)
    except (OSError, ValueError, UnicodeError) as e:
        report.unreadable.append(f"{catalog.path} ({e})")
        return []
    one, many = plural_indices(entries.metadata.get("Plural-Forms"))
    pairs = []
    for entry in entries:
        if not entry.msgid:  # the header
            continue
        report.entries += 1
        if entry.obsolete or "fuzzy" in entry.flags:
            report.remove("fuzzy or obsolete")
            continue
        if entry.msgid.strip().lower() in CREDITS:
            report.remove("translator credits")
            continue
        if not entry.msgid_plural:
            if entry.msgstr.strip():
                pairs.append(RawPair(entry.msgid, entry.msgstr, catalog.domain))
            else:
                report.remove("untranslated")
            continue
        forms = entry.msgstr_plural
        if not forms.get(one, "").strip():
            report.remove("untranslated")
            continue
        pairs.append(RawPair(entry.msgid, forms[one], catalog.domain))
        if many is not None and forms.get(many, "").strip():
            pairs.append(RawPair(entry.msgid_plural, forms[many], catalog.domain))
            report.add("plural: English plural -> plural form")
    return pairs


_PAREN_ACCEL = re.compile(r"\s*[(（]\s*[_&][^\W_]\s*[)）]")  # 文件(_F), 打开（&O）
_AMP_ACCEL = re.compile(r"(?<!&)&(?=[^\W\d_])(?![A-Za-z]+;)")  # &File, E&xit; not &amp;, &&, 2>&1
_UNDERSCORE_ACCEL = re.compile(r"(?<!\w)_(?=[^\W_])")  # _File; not snake_case, not __init__
_MID_UNDERSCORE = re.compile(r"(?<![\W_])_(?=[^\W_])|(?<!\w)_(?=[^\W_])")  # Cance_l and _File
_ENTITY = re.compile(r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);")


def strip_accelerators(text: str, mid_word: bool = False) -> str:
    """``"_Open"``, ``"&Open"``, ``"打开(_O)"`` -> ``"Open"``/``"打开"``; placeholders untouched.

    ``mid_word``: also the ``_`` inside a word (``"Cance_l"``), which
    :func:`strip_pair_accelerators` allows only where it cannot be an identifier.
    """
    underscore = _MID_UNDERSCORE if mid_word else _UNDERSCORE_ACCEL
    out = []
    for piece, is_placeholder in split_placeholders(text):
        if not is_placeholder:
            piece = underscore.sub("", _AMP_ACCEL.sub("", _PAREN_ACCEL.sub("", piece)))
        out.append(piece)
    return "".join(out)


def _mnemonic_words(text: str) -> list[str]:
    """Words (outside placeholders) holding a mid-word ``_`` mnemonic candidate."""
    return [w for piece, ph in split_placeholders(text) if not ph
            for w in re.findall(r"\w+", piece) if _MID_UNDERSCORE.search(w)]


def strip_pair_accelerators(source: str, target: str) -> tuple[str, str]:
    """Accelerators of both sides; a mid-word ``_`` goes when the pair shows it is one.

    ``Cance_l -> 取消(_L)`` or ``Cance_l -> Annu_ler``: one candidate word per side, not
    copied verbatim to the other side (an identifier like ``max_len`` would be).
    """
    words, other = _mnemonic_words(source), _mnemonic_words(target)
    mnemonic = (len(words) == 1 and words[0] not in target and (
        (len(other) == 1 and other[0] not in source) or (not other and _PAREN_ACCEL.search(target) is not None)))
    return strip_accelerators(source, mnemonic), strip_accelerators(target, mnemonic)


def unescape(text: str) -> str:
    """XML/HTML entities (``&amp;`` -> ``&``) decoded, every whitespace run one space."""
    return " ".join(_ENTITY.sub(lambda m: html.unescape(m.group()), text).split())


def clean_pairs(pairs: list[RawPair], report: CleaningReport, max_chars: int) -> list[RawPair]:
    """Accelerators, entities and whitespace; drop symbol-only, placeholder-mismatched, long."""
    kept = []
    for pair in pairs:
        stripped = list(strip_pair_accelerators(pair.source, pair.target))
        if stripped != [pair.source, pair.target]:
            report.change("accelerator marks stripped")
        source, target = (unescape(t) for t in stripped)
        if [source, target] != stripped:
            report.change("entities unescaped / whitespace collapsed")
        words = "".join(p for p, is_placeholder in split_placeholders(source) if not is_placeholder)
        if not any(ch.isalpha() for ch in words) or not target:
            report.remove("no words (placeholders or symbols only)")
        elif not placeholders_match(source, target):
            report.remove("placeholders differ")
        elif max(len(source), len(target)) > max_chars:
            report.remove(f"longer than {max_chars} characters")
        else:
            kept.append(RawPair(source, target, pair.catalog))
    return kept


@dataclasses.dataclass
class CleaningReport:
    """What happened to the catalog entries of one language, step by step."""

    language: str = ""
    catalogs: int = 0
    entries: int = 0
    removed: dict[str, int] = dataclasses.field(default_factory=dict)
    added: dict[str, int] = dataclasses.field(default_factory=dict)
    changed: dict[str, int] = dataclasses.field(default_factory=dict)
    kept: dict[str, int] = dataclasses.field(default_factory=dict)
    unreadable: list[str] = dataclasses.field(default_factory=list)

    def remove(self, step: str, n: int = 1) -> None:
        self.removed[step] = self.removed.get(step, 0) + n

    def add(self, step: str, n: int = 1) -> None:
        self.added[step] = self.added.get(step, 0) + n

    def change(self, step: str, n: int = 1) -> None:
        self.changed[step] = self.changed.get(step, 0) + n

    def lines(self) -> list[str]:
        """The report as aligned text lines, in the order the steps ran."""
        rows = [(f"{self.entries} entries in {self.catalogs} catalogs ({self.language})", "")]
        rows += [(f"  + {step}", f"+{n}") for step, n in self.added.items()]
        rows += [(f"  - {step}", f"-{n}") for step, n in self.removed.items()]
        rows += [(f"  ~ {step} (kept)", f"{n}") for step, n in self.changed.items()]
        rows += [(f"  = {split}", f"{n}") for split, n in self.kept.items()]
        rows += [(f"  ! unreadable: {u}", "") for u in self.unreadable]
        width = max(len(r[0]) for r in rows)
        return [f"{label:<{width}}  {count:>7}".rstrip() for label, count in rows]


@dataclasses.dataclass
class GettextSplits(CorpusSplits):
    """:class:`CorpusSplits` plus the cleaning report and which catalogs each split holds."""

    report: CleaningReport = dataclasses.field(default_factory=CleaningReport)
    catalogs: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        held_out = ", ".join(self.catalogs.get("test", [])[:8])
        return f"{super().describe()}; test catalogs: {held_out}"


def catalog_family(domain: str) -> str:
    """``gtk30-properties`` -> ``gtk``, ``postgres-15`` -> ``postgres``, ``iso_639-3`` -> ``iso``."""
    name = domain.lower().replace("-", "_").removesuffix("_properties")
    return re.sub(r"(?:_?\d+(?:\.\d+)*)+$", "", re.sub(r"(?:_\d+(?:\.\d+)*)+(?=_|$)", "", name)) or name


def group_catalogs(pairs: list[RawPair], overlap: float = 0.2) -> list[list[str]]:
    """Catalogs of one family, or sharing >= ``overlap`` of the smaller one's messages, grouped."""
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
        listing = " ".join(f"{name}({n})" for name, n in sorted(languages.items())) or "none"
        raise AttnlabError(
            f"--data {PREFIX}{want.name}: no gettext catalogs for {want.name!r} on this machine; "
            f"languages available (catalogs): {listing}; or add --catalogs PATH"
        )
    report = CleaningReport(language=want.name, catalogs=len(found))
    raw = [pair for catalog in found for pair in read_catalog(catalog, report)]
    given = [Path(c).resolve() for c in catalogs or ()]
    for broken in report.unreadable:  # a catalog of the machine may be skipped; one the user named may not
        path = Path(broken.split(" (", 1)[0]).resolve()
        if any(path == g or g in path.parents for g in given):
            raise AttnlabError(f"--catalogs: {broken}: not a readable .po/.mo catalog")
    pairs = clean_pairs(raw, report, max_chars)
    split_of = assign_groups(group_catalogs(pairs), Counter(p.catalog for p in pairs), valid_fraction, test_fraction, seed)
    by_split = {name: deduplicate([p for p in pairs if split_of[p.catalog] == name]) for name in ("train", "valid", "test")}
    report.remove("duplicate messages", len(pairs) - sum(len(v) for v in by_split.values()))
    seen = {p.source for p in by_split["train"]}
    for name in ("test", "valid"):
        before = len(by_split[name])
        by_split[name] = [p for p in by_split[name] if p.source not in seen]
        report.remove("held-out message seen in a training (or test) catalog", before - len(by_split[name]))
        seen |= {p.source for p in by_split[name]}
    corpora = {name: ParallelCorpus([p.source for p in ps], [p.target for p in ps]) for name, ps in by_split.items()}
    report.kept = {name: len(c) for name, c in corpora.items()}
    if not all(report.kept.values()):
        raise AttnlabError(f"gettext:{want.name}: a split is empty after cleaning ({report.kept}); add catalogs with --catalogs")
    names = {name: sorted({c for c, s in split_of.items() if s == name}) for name in ("train", "valid", "test")}
    return GettextSplits(**corpora, report=report, catalogs=names)


def _main() -> None:  # python -m attnlab.data.gettext_corpus zh_CN: the cleaning report
    splits = load_gettext(sys.argv[1] if len(sys.argv) > 1 else "zh_CN", sys.argv[2:])
    print("\n".join(splits.report.lines()))
    for name in ("valid", "test"):
        print(f"{name} catalogs: {', '.join(splits.catalogs[name])}")


if __name__ == "__main__":
    _main()
