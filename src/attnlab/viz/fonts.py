"""A font for the labels the default font cannot draw (Chinese, Japanese, Korean, ...).

Matplotlib draws text in ``font.family`` (DejaVu Sans by default), which has no CJK
glyphs: Chinese tokens would show as empty boxes. :func:`fonts_for` reads the labels of a
picture first; when some of their characters are missing from the fonts in use, it finds
an installed font that has them and appends its family to ``font.family`` while the
picture is drawn. Matplotlib (>= 3.6) takes each glyph from the first family that has it,
so Latin text keeps the default font. When no installed font has them, one line on
stderr (once a process) names the characters and what to install, and the picture is
drawn anyway.

Fonts are checked by their character maps (``matplotlib.ft2font``): first those
Matplotlib lists, then font files installed since Matplotlib built its font cache.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from collections.abc import Iterable, Iterator

import matplotlib
from matplotlib import font_manager, ft2font
from matplotlib.text import Text

INSTALL = "apt-get install fonts-noto-cjk (or fonts-wqy-microhei); other scripts: fonts-noto"
LAST_RESORT = "Last Resort"  # Matplotlib's font of placeholder boxes: it "has" every character
SHOWN = 20  # characters named in the notice
_noticed: list[str] = []  # the notice, once printed


@functools.cache
def _charmap(path: str) -> frozenset[int]:
    """The code points the font file at ``path`` has glyphs for (none if unreadable)."""
    try:
        return frozenset(ft2font.FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


def _current_fonts() -> list[str]:
    """The font files ``font.family`` resolves to, one per family that is installed."""
    paths = []
    for family in matplotlib.rcParams["font.family"]:
        try:
            paths.append(font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False))
        except ValueError:  # a family that is not installed
            continue
    return paths or [font_manager.findfont(font_manager.FontProperties())]


def missing_characters(texts: Iterable[str]) -> str:
    """The characters of ``texts`` (in order, once each) that the fonts in use cannot draw."""
    have = frozenset().union(*(_charmap(path) for path in _current_fonts()))
    wanted = dict.fromkeys(ch for text in texts for ch in text if ch.isprintable() and not ch.isspace())
    return "".join(ch for ch in wanted if ord(ch) not in have)


def _installed_fonts() -> Iterator[tuple[str, str]]:
    """(path, family) of the installed fonts: Matplotlib's list, then files it has not listed."""
    listed: dict[str, str] = {}
    for entry in font_manager.fontManager.ttflist:
        listed.setdefault(entry.fname, entry.name)  # a .ttc's first face, by its own name
    yield from listed.items()
    for path in font_manager.findSystemFonts():
        if path not in listed:
            yield path, ""  # named once it is chosen: see font_covering


@functools.cache
def font_covering(characters: str) -> tuple[str | None, str]:
    """The family of an installed font that has the most of ``characters`` (all, when one
    does), and the characters it lacks; ``(None, characters)`` when no font has any."""
    best, best_path, lacking = None, "", characters
    for path, family in _installed_fonts():
        if LAST_RESORT in family:
            continue
        charmap = _charmap(path)
        left = "".join(ch for ch in characters if ord(ch) not in charmap)
        if len(left) < len(lacking):
            best, best_path, lacking = family, path, left
            if not left:
                break
    if best == "":  # a font installed after Matplotlib's cache was built: list it now
        font_manager.fontManager.addfont(best_path)
        best = ft2font.FT2Font(best_path).family_name
    return best, lacking


def _notice(characters: str) -> None:
    """One line on stderr, the first time characters cannot be drawn."""
    if _noticed:
        return
    shown = characters[:SHOWN] + ("..." if len(characters) > SHOWN else "")
    _noticed.append(f"attnlab viz: no installed font has {shown} (drawn as empty boxes); to draw them: {INSTALL}")
    print(_noticed[0], file=sys.stderr)


@contextlib.contextmanager
def fonts_for(texts: Iterable[str]) -> Iterator[None]:
    """Within: ``font.family`` extended by a font for the characters of ``texts`` the
    fonts in use lack. Create and save the figure inside, so every label gets it."""
    missing = missing_characters(texts)
    family, lacking = font_covering(missing) if missing else (None, "")
    if lacking:
        _notice(lacking)
    extra = [family] if family else []
    with matplotlib.rc_context({"font.family": [*matplotlib.rcParams["font.family"], *extra]}), warnings.catch_warnings():
        if lacking:  # said once above, not once a glyph
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        yield


def fit_fonts(artists: Iterable[Text]) -> None:
    """Give texts already made (an existing axes' title and tick labels, made when the axes
    was) the fonts :func:`fonts_for` would have given them: they keep them when drawn."""
    artists = list(artists)
    with fonts_for(artist.get_text() for artist in artists):
        families = list(matplotlib.rcParams["font.family"])
    for artist in artists:
        artist.set_fontfamily(families)
