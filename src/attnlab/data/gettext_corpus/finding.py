"""Finding the catalogs of one language: the standard locale folders, installed Python
packages' ``locale*`` folders and the files and folders passed as ``--catalogs``.

Per (folder, program) the best matching locale folder (:meth:`Locale.match`) is read once;
a ``.po`` beside its ``.mo`` wins, since it keeps the fuzzy flags that ``msgfmt`` drops.
"""

from __future__ import annotations

import dataclasses
import site
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import polib

from attnlab.data.gettext_corpus.locales import Locale, parse_spec
from attnlab.errors import AttnlabError

STANDARD_ROOTS = ("/usr/share/locale", "/usr/share/locale-langpack", "/usr/local/share/locale")
ROOT_PATTERNS = ("/usr/share/*/locale", "/usr/share/*/lang", "/usr/share/*/*/lang", "/opt/*/share/locale")
PACKAGE_PATTERNS = ("*/locale", "*/locales", "*/*/locale", "*/*/*/locale")  # under site-packages
SUFFIXES = (".po", ".mo")  # .po first: it keeps the fuzzy flags that msgfmt drops


@dataclasses.dataclass(frozen=True)
class Catalog:
    path: Path
    domain: str  # the program: the file name without suffix (or the project folder for fr.po)
    locale: str  # the folder or file name it was found under ("" when unknown)


def open_catalog(path: Path) -> polib._BaseFile:
    """A ``.mo`` or ``.po`` file read by ``polib`` (the charset comes from its header)."""
    return polib.mofile(str(path)) if path.suffix == ".mo" else polib.pofile(str(path))


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
        return open_catalog(path).metadata.get("Language", "").strip()
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
