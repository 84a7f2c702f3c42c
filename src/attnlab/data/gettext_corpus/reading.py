"""Reading one catalog into (English, translation) pairs: fuzzy, obsolete, untranslated
entries and translator credits are dropped; a plural entry gives its singular pair and,
when the language has a separate plural form, the English plural with it.
"""

from __future__ import annotations

import dataclasses
import gettext
import re

from attnlab.data.gettext_corpus.finding import Catalog, open_catalog
from attnlab.data.gettext_corpus.report import CleaningReport

CREDITS = {"translator-credits", "translator_credits", "translators", "translator credits"}


@dataclasses.dataclass
class RawPair:
    source: str
    target: str
    catalog: str  # the domain


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


def read_catalog(catalog: Catalog, report: CleaningReport) -> list[RawPair]:
    """The translated pairs of one catalog; fuzzy, obsolete, empty and plural entries counted."""
    try:
        entries = open_catalog(catalog.path)
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
