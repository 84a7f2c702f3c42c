"""Placeholders in UI messages: find them, compare them, keep them whole in a tokenizer.

A program fills a message's placeholders at run time, so a translation must carry
exactly the same ones::

    "Copy %s to %s"               ->  "将 %s 复制到 %s"
    "Delete %(count)d files?"     ->  "Supprimer %(count)d fichiers ?"
    "%2$s: %1$s"                  ->  (a translator may reorder: %1$s and %2$s number them)
    "Open {0}"  "Page %1 of %2"   ->  Python's str.format, Qt's numbered arguments
    "$HOME"  "${PATH}"            ->  shell variables

:data:`PLACEHOLDER` matches all of these (``%%`` is a literal percent sign and is not
one). :func:`placeholder_signature` is what must agree between a message and its
translation: the multiset of placeholders with printf's argument number ``N$`` removed,
since ``%s %s`` -> ``%2$s %1$s`` is a legal reordering. :func:`protect_placeholders`
adds the placeholders of a corpus to a tokenizer as whole tokens, so ``%(count)d`` is
one token instead of six bytes the model must learn to spell.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from tokenizers import AddedToken

from attnlab.data.tokenizer import Tokenizer

_PRINTF = (
    r"%(?:\d+\$)?[-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?"  # %[N$][flags][width][.precision]; no ' ' flag: "100% complete"
    r"(?:hh|h|ll|l|L|q|j|z|Z|t|I64|I32)?[diouxXeEfFgGaAcspnm]"  # [length]conversion
)
PLACEHOLDER = re.compile(
    r"%%"  # a literal percent sign: matched first so that it is skipped, not a placeholder
    r"|%\([^)\s]{1,40}\)[-+ #0]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]"  # Python %(name)s
    rf"|{_PRINTF}"
    r"|%\d+(?![\d$])"  # Qt %1
    r"|\{[A-Za-z_0-9]{0,40}(?:[.\[][A-Za-z_0-9\]]+)*(?:![rsa])?(?::[^{}\s]{0,20})?\}"  # {0} {name} {:.2f}
    r"|\$\{[A-Za-z_][A-Za-z_0-9]*\}|\$[A-Za-z_][A-Za-z_0-9]*"  # ${VAR} $VAR
)
ARG_NUMBER = re.compile(r"^%\d+\$")  # printf's argument number N$


def find_placeholders(text: str) -> list[str]:
    """The placeholders of ``text`` in order (``%%`` excluded)."""
    return [m.group() for m in PLACEHOLDER.finditer(text) if m.group() != "%%"]


def placeholder_signature(text: str) -> Counter[str]:
    """The multiset that a translation must keep: placeholders without printf's ``N$``."""
    return Counter(ARG_NUMBER.sub("%", p) for p in find_placeholders(text))


def placeholders_match(source: str, target: str) -> bool:
    """Whether ``target`` carries exactly the placeholders of ``source`` (order free)."""
    return placeholder_signature(source) == placeholder_signature(target)


def split_placeholders(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into ``(piece, is_placeholder)`` runs; ``%%`` counts as text."""
    pieces, last = [], 0
    for m in PLACEHOLDER.finditer(text):
        if m.group() == "%%":
            continue
        if m.start() > last:
            pieces.append((text[last : m.start()], False))
        pieces.append((m.group(), True))
        last = m.end()
    if last < len(text):
        pieces.append((text[last:], False))
    return pieces


def placeholder_accuracy(sources: Sequence[str], hypotheses: Sequence[str]) -> tuple[float, int]:
    """Share of the sentences with placeholders whose translation keeps all of them.

    Returns ``(accuracy in [0, 1], number of sentences with placeholders)``; the accuracy
    is ``nan`` when no source has a placeholder.
    """
    judged = [(s, h) for s, h in zip(sources, hypotheses) if find_placeholders(s)]
    if not judged:
        return float("nan"), 0
    return sum(placeholders_match(s, h) for s, h in judged) / len(judged), len(judged)


def protect_placeholders(tokenizer: Tokenizer, texts: Iterable[str], min_count: int = 1) -> int:
    """Add every placeholder seen ``min_count`` times in ``texts`` as one whole token.

    Added tokens are cut out of the text before the tokenizer's own rules run, encode
    as one id and decode back verbatim (they are not special: decoding keeps them).
    Returns how many tokens were added.
    """
    counts = Counter(p for text in texts for p in find_placeholders(text))
    new = sorted(p for p, n in counts.items() if n >= min_count and tokenizer.backend.token_to_id(p) is None)
    return tokenizer.backend.add_tokens([AddedToken(p, single_word=False, normalized=False) for p in new])
