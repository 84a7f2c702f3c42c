"""Fill a gettext catalog with machine translations for a human to review.

    report = fill_catalog("po/fr.po", "po/fr.filled.po", translate, language="fr")
    print(report.line())                  # filled 120, kept 340, refused 3

``translate(texts) -> list[str | None]`` turns English messages into translations
(``None``: refused, e.g. :meth:`~attnlab.apps.translate.translator.Translator.translate_checked`
when it could not keep the placeholders). For every untranslated entry (empty ``msgstr``, not
obsolete):

* a plain entry gets the translation of ``msgid``;
* a plural entry gets ``msgstr[i]`` for each of the catalog's ``nplurals`` forms: the
  translation of ``msgid`` for the form n = 1 takes, of ``msgid_plural`` for the others
  (French ``plural=(n > 1)``: ``[0]`` from msgid, ``[1]`` from msgid_plural; Chinese's one
  form: msgid);
* the entry is marked ``fuzzy``: a human reviews it before msgfmt compiles it in;
* a translation that does not keep the message's placeholders and tags
  (:func:`~attnlab.data.placeholders_repair.keeps_placeholders`) is refused: the entry
  stays empty and is counted.

Before translating, a message's accelerator mark (``_Open``, ``&Open``) is taken off
(the model learnt messages without them) and put back on the translation's first letter
(``(_O)`` after a Chinese one), and its leading/trailing whitespace (``\\n``) is kept as
msgfmt requires. Translated entries (fuzzy ones too), the header, comments, references,
flags and obsolete entries are left as they were; a ``.pot`` template gets the
language's ``Language``/``Plural-Forms`` header and UTF-8. The file keeps its charset
(UTF-8 when a translation does not fit it) and its line endings (CRLF stays CRLF), and
is written atomically: a temporary file in the same folder, renamed over ``out`` when
complete, so an interrupted run leaves every file as it was.
"""

from __future__ import annotations

import gettext
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polib

from attnlab.data.gettext_corpus.cleaning import strip_accelerators
from attnlab.data.placeholders_repair import keeps_placeholders
from attnlab.errors import AttnlabError

Translate = Callable[[Sequence[str]], Sequence[str | None]]
PLURAL_FORMS = {"fr": "nplurals=2; plural=(n > 1);", "de": "nplurals=2; plural=(n != 1);",
                "zh": "nplurals=1; plural=0;", "ja": "nplurals=1; plural=0;", "es": "nplurals=2; plural=(n != 1);",
                "it": "nplurals=2; plural=(n != 1);", "pt": "nplurals=2; plural=(n != 1);"}
_PLURALS = re.compile(r"nplurals\s*=\s*(\d+)\s*;\s*plural\s*=\s*([^;]+);?")
_ACCEL = re.compile(r"(?<![\w&_])([_&])(?=[^\W\d_])")


@dataclass
class FillReport:
    filled: int = 0
    kept: int = 0
    refused: int = 0
    refused_messages: list[str] = field(default_factory=list)
    charset: str = "UTF-8"
    charset_changed: bool = False

    def line(self) -> str:
        return f"filled {self.filled}, kept {self.kept}, refused {self.refused}"


def plural_rule(catalog: polib._BaseFile, language: str | None, path: Path) -> tuple[int, Callable[[int], int]]:
    """``(nplurals, plural(n))`` from the catalog's header, else the language's (a template)."""
    m = _PLURALS.search(catalog.metadata.get("Plural-Forms", ""))
    if m is None or not m.group(1).isdigit():
        code = (language or catalog.metadata.get("Language") or "").split("_")[0].split("@")[0]
        if code not in PLURAL_FORMS:
            raise AttnlabError(f"--po {path}: no usable Plural-Forms header and no rule known for language "
                               f"{language!r}; add 'Plural-Forms: nplurals=...; plural=...;' to the header")
        catalog.metadata["Plural-Forms"] = PLURAL_FORMS[code]
        m = _PLURALS.search(PLURAL_FORMS[code])
    try:
        return int(m.group(1)), gettext.c2py(m.group(2).strip())
    except (ValueError, SyntaxError) as e:
        raise AttnlabError(f"--po {path}: Plural-Forms {m.group(0)!r} is not a valid rule ({e})") from None


def _split_accelerator(text: str) -> tuple[str, tuple[str, str] | None]:
    """``"_Open"`` -> ``("Open", ("_", "O"))``; one mark only, else unchanged."""
    marks = _ACCEL.findall(text)
    stripped = strip_accelerators(text)
    if len(marks) != 1 or stripped == text:
        return text, None
    at = _ACCEL.search(text)
    return stripped, (at.group(1), text[at.end()])


def _put_accelerator(text: str, mark: tuple[str, str] | None) -> str:
    if mark is None:
        return text
    first = next((n for n, ch in enumerate(text) if ch.isalpha()), None)
    if first is None or ord(text[first]) >= 0x2E80:  # CJK: the key in parentheses, as those catalogs do
        return f"{text}({mark[0]}{mark[1].upper()})"
    return text[:first] + mark[0] + text[first:]


def _prepare(text: str) -> tuple[str, str, str, tuple[str, str] | None]:
    """``(leading whitespace, message as the model knows it, trailing whitespace, mark)``."""
    body = text.strip()
    core, mark = _split_accelerator(body)
    return text[: len(text) - len(text.lstrip())], " ".join(core.split()), text[len(text.rstrip()):], mark


def fill_catalog(po: str | Path, out: str | Path, translate: Translate, language: str | None = None,
                 batch_size: int = 256) -> FillReport:
    """Translate the untranslated entries of ``po`` into ``out`` (see the module docstring)."""
    po, out = Path(po), Path(out)
    if not po.is_file():
        raise AttnlabError(f"--po {po}: file not found")
    raw = po.read_bytes()
    try:
        catalog = polib.pofile(str(po), wrapwidth=79)
    except (OSError, ValueError, UnicodeError) as e:
        raise AttnlabError(f"--po {po}: not a readable .po/.pot catalog ({e})") from None
    report = FillReport(charset=catalog.encoding)
    todo = [e for e in catalog if not e.obsolete and e.msgid and not _has_translation(e)]
    report.kept = sum(1 for e in catalog if not e.obsolete and e.msgid and _has_translation(e))
    if any(e.msgid_plural for e in todo):
        nplurals, rule = plural_rule(catalog, language, po)
        singular_form = rule(1)
    sources = sorted({text for e in todo for text in ((e.msgid, e.msgid_plural) if e.msgid_plural else (e.msgid,))})
    prepared = {s: _prepare(s) for s in sources}
    asked = sorted({p[1] for p in prepared.values() if any(ch.isalpha() for ch in p[1])})
    answers: dict[str, str | None] = {}
    for start in range(0, len(asked), batch_size):
        chunk = asked[start : start + batch_size]
        answers.update(zip(chunk, translate(chunk)))

    def translation(source: str) -> str | None:
        lead, core, trail, mark = prepared[source]
        if not any(ch.isalpha() for ch in core):
            return source  # placeholders and symbols only ("%s: %s"): nothing to translate
        found = answers.get(core)
        if found is None or not found.strip():
            return None
        text = _put_accelerator(" ".join(found.split()), mark)
        return lead + text + trail if keeps_placeholders(source, text) else None

    for entry in todo:
        if entry.msgid_plural:
            forms = {i: translation(entry.msgid if i == singular_form else entry.msgid_plural) for i in range(nplurals)}
        else:
            forms = {0: translation(entry.msgid)}
        if any(t is None or not t.strip() for t in forms.values()):
            report.refused += 1
            report.refused_messages.append(entry.msgid)
            continue
        if entry.msgid_plural:
            entry.msgstr_plural = forms
        else:
            entry.msgstr = forms[0]
        if "fuzzy" not in entry.flags:
            entry.flags.append("fuzzy")
        report.filled += 1
    _complete_header(catalog, language if report.filled else None)
    _write_atomically(catalog, out, crlf=b"\r\n" in raw, report=report)
    return report


def _has_translation(entry: polib.POEntry) -> bool:
    return bool(entry.msgstr) or any(entry.msgstr_plural.values())


def _complete_header(catalog: polib.POFile, language: str | None) -> None:
    """A template's placeholder charset becomes UTF-8 (msgfmt refuses ``CHARSET``) and its
    empty ``Language`` the one translated into."""
    if language and "Language" in catalog.metadata and not catalog.metadata["Language"].strip():
        catalog.metadata["Language"] = language
    content_type = catalog.metadata.get("Content-Type", "")
    if "charset=CHARSET" in content_type or not content_type:
        catalog.metadata["Content-Type"] = "text/plain; charset=UTF-8"
        catalog.encoding = "utf-8"


def _write_atomically(catalog: polib.POFile, out: Path, *, crlf: bool, report: FillReport) -> None:
    text = str(catalog)
    if not catalog.header and text.startswith("#\n"):
        text = text[2:]  # polib writes an empty header comment as a lone '#'
    if not text.endswith("\n"):
        text += "\n"
    try:
        data = text.encode(catalog.encoding)
    except (UnicodeEncodeError, LookupError):
        old = catalog.encoding
        catalog.metadata["Content-Type"] = re.sub(r"charset=[^;\s]+", "charset=UTF-8",
                                                  catalog.metadata.get("Content-Type", "text/plain; charset=UTF-8"))
        catalog.encoding = "utf-8"
        text = str(catalog)
        if not catalog.header and text.startswith("#\n"):
            text = text[2:]
        data = (text if text.endswith("\n") else text + "\n").encode("utf-8")
        report.charset, report.charset_changed = f"UTF-8 (was {old})", True
    if crlf:
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
