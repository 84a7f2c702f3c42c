"""Whether a translation keeps a message's placeholders and markup, and a verified repair.

A program fills a message's placeholders at run time and renders its markup, so a
translation is usable only when it carries exactly what the source carries:

* the multiset of placeholders (:func:`~attnlab.data.placeholders.placeholder_signature`:
  ``%s %s`` -> ``%2$s %1$s`` is a legal reordering);
* the *order* of the placeholders whose argument is their position: printf's without
  ``N$`` (``%s of %d`` -> ``%d de %s`` would crash the program) and ``{}``;
* the multiset of markup tags (``<b>``, ``</b>``, ``<a href="...">``, ``<br/>``: Pango and
  HTML's inline tags; a metavariable such as ``<file>`` is prose a translator may change).

:func:`keeps_placeholders` is that rule (stricter than
:func:`~attnlab.data.placeholders.placeholders_match`, the metric's). :func:`repair_placeholders`
makes the few edits that are certain to help and checks the result with that rule::

    1. a placeholder of the wrong kind where one of the right kind is missing
       ("Ouvrir %d" for "Open %s"): replaced, in order;
    2. a placeholder or tag the source lacks, with nothing missing: removed;
    3. order-sensitive placeholders out of order: rewritten in the source's order.

What it cannot repair (a placeholder missing with nothing to replace) returns ``None``:
the caller refuses the translation, it never passes on a wrong one.
"""

from __future__ import annotations

import re
from collections import Counter

from attnlab.data.placeholders import ARG_NUMBER, PLACEHOLDER

MARKUP_TAGS = ("a|b|big|i|s|u|small|span|sub|sup|tt|br|p|em|strong|code|pre|kbd|var|q|cite|"
               "markup|ul|ol|li|hr|img|div|font|h[1-6]|table|tr|td|th")
MARKUP = re.compile(rf"</?(?:{MARKUP_TAGS})(?:\s[^<>]*)?/?>", re.IGNORECASE)
_ORDERED = re.compile(r"^(?:%[^$(]*[a-zA-Z]|\{\})$")  # printf without N$ (not %(name)s), {}


def _key(piece: str) -> str:
    return ARG_NUMBER.sub("%", piece)


def pieces(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, text)`` of every placeholder and markup tag of ``text``, in order."""
    found = [(m.start(), m.end(), m.group()) for m in PLACEHOLDER.finditer(text) if m.group() != "%%"]
    taken = [(s, e) for s, e, _ in found]
    for m in MARKUP.finditer(text):
        if not any(s < m.end() and m.start() < e for s, e in taken):
            found.append((m.start(), m.end(), m.group()))
    return sorted(found)


def ordered(text: str) -> list[str]:
    """The placeholders whose argument is their position, in order."""
    return [p for _, _, p in pieces(text) if _ORDERED.match(p) and not MARKUP.fullmatch(p)]


def required(text: str) -> Counter[str]:
    """What a translation of ``text`` must carry: placeholders (``N$`` dropped) and tags."""
    return Counter(_key(p) for _, _, p in pieces(text))


def keeps_placeholders(source: str, target: str) -> bool:
    """Same placeholders and tags as ``source``, order-sensitive placeholders in order (or
    the target numbers every printf argument: ``%s of %s`` -> ``%2$s de %1$s``)."""
    if required(source) != required(target):
        return False
    want, have = ordered(source), ordered(target)
    return want == have or (not have and all(p.startswith("%") for p in want))


def repair_placeholders(source: str, target: str) -> str | None:
    """``target`` itself when it keeps the placeholders, else the repaired text (verified),
    else ``None`` (see the module docstring)."""
    if keeps_placeholders(source, target):
        return target
    spans = pieces(target)
    have = Counter(_key(p) for _, _, p in spans)
    missing, extra = required(source) - have, have - required(source)
    replacements = []  # the missing placeholders (not tags), in the source's order
    for _, _, piece in pieces(source):
        if missing[_key(piece)] > 0 and not MARKUP.fullmatch(piece):
            missing[_key(piece)] -= 1
            replacements.append(piece)
    out, last = [], 0
    for start, end, piece in spans:
        if extra[_key(piece)] > 0:
            extra[_key(piece)] -= 1
            out.append(target[last:start])
            if replacements and not MARKUP.fullmatch(piece):
                out.append(replacements.pop(0))  # rule 1
            last = end  # rule 2 when nothing replaces it
    out.append(target[last:])
    text = _reorder(source, re.sub(r" {2,}", " ", "".join(out)).strip())
    return text if keeps_placeholders(source, text) else None


def _reorder(source: str, text: str) -> str:
    """Rule 3: the order-sensitive placeholders of ``text`` rewritten in the source's order."""
    want = ordered(source)
    spans = [(s, e, p) for s, e, p in pieces(text) if _ORDERED.match(p) and not MARKUP.fullmatch(p)]
    if len(spans) != len(want) or [p for _, _, p in spans] == want:
        return text
    out, last = [], 0
    for (start, end, _), piece in zip(spans, want):
        out.append(text[last:start] + piece)
        last = end
    return "".join(out) + text[last:]


_CONVERSION = re.compile(r"[diouxXeEfFgGaAcspnm]$")


def stand_in_placeholders(text: str, known: set[str]) -> str:
    """``text`` with each unnumbered printf placeholder the vocabulary lacks (``known``: its
    placeholder keys) replaced by the plain one of its conversion (``%.250s`` -> ``%s``), so
    the model sees a placeholder it learnt; :func:`restore_placeholders` puts them back."""
    out, last = [], 0
    for start, end, piece in pieces(text):
        plain = "%" + piece[-1] if _ORDERED.match(piece) and _CONVERSION.search(piece) else None
        if piece.startswith("%") and _key(piece) not in known and plain in known:
            out.append(text[last:start] + plain)
            last = end
    return "".join(out) + text[last:]


def restore_placeholders(source: str, translation: str) -> str:
    """The translation's unnumbered printf placeholders rewritten as the source's, in order,
    when there are as many (printf takes them in order, so the k-th stands for the k-th)."""
    want = [p for p in ordered(source) if p.startswith("%")]
    spans = [(s, e, p) for s, e, p in pieces(translation) if _ORDERED.match(p) and p.startswith("%")]
    if len(spans) != len(want):
        return translation
    out, last = [], 0
    for (start, end, _), piece in zip(spans, want):
        out.append(translation[last:start] + piece)
        last = end
    return "".join(out) + translation[last:]
