"""Cleaning the pairs: accelerator marks go (``_File``, ``&File``, ``文件(_F)``), entities
are unescaped and whitespace collapsed; messages of placeholders and symbols only, pairs
whose placeholders differ (:mod:`attnlab.data.placeholders`) and very long ones are dropped.
"""

from __future__ import annotations

import html
import re

from attnlab.data.gettext_corpus.reading import RawPair
from attnlab.data.gettext_corpus.report import CleaningReport
from attnlab.data.placeholders import placeholders_match, split_placeholders

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
