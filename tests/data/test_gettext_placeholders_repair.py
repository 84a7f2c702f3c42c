"""keeps_placeholders (the rule a filled catalog entry must pass) and the verified repair."""

from __future__ import annotations

import pytest

from attnlab.data.placeholders_repair import (
    keeps_placeholders,
    repair_placeholders,
    restore_placeholders,
    stand_in_placeholders,
)


@pytest.mark.parametrize("source, target, kept", [
    ("Open %s", "Ouvrir %s", True),
    ("%s of %d", "%d de %s", False),  # unnumbered printf arguments may not change order
    ("%1$s of %2$s", "%2$s de %1$s", True),  # numbered ones may
    ("%s of %s", "%2$s de %1$s", True),
    ("Copy %(count)d to {dest}", "{dest} : %(count)d copiés", True),  # named ones may
    ("{} and {}", "{} et {}", True),
    ("<b>Bold</b> $HOME", "<b>Gras</b> $HOME", True),
    ("<b>Bold</b>", "Gras", False),
    ("Usage: <file>", "Usage : <fichier>", True),  # a metavariable is prose, not markup
    ("100% done", "100 % fait", True),
    ("Open %s", "Ouvrir %s %s", False),
])
def test_keeps_placeholders(source, target, kept):
    assert keeps_placeholders(source, target) is kept


@pytest.mark.parametrize("source, target, repaired", [
    ("Open %s", "Ouvrir %s", "Ouvrir %s"),
    ("Open %s", "Ouvrir %d", "Ouvrir %s"),  # the wrong kind replaced
    ("Open %s", "Ouvrir %s %s", "Ouvrir %s"),  # an extra removed
    ("%s of %d", "%d de %s", "%s de %d"),  # printf order restored
    ("Copy {0} to {1}", "Copier {0} vers {2}", "Copier {0} vers {1}"),
    ("<b>Hi</b> %s", "<b>Salut</b> %s <i>", "<b>Salut</b> %s"),
    ("Open %s", "Ouvrir", None),  # missing with nothing to replace: refused
    ("<b>Bold</b>", "Gras", None),
    ("%1$s and %2$s", "%2$s et %1$s", "%2$s et %1$s"),
])
def test_repair_is_verified_or_refuses(source, target, repaired):
    result = repair_placeholders(source, target)
    assert result == repaired
    assert result is None or keeps_placeholders(source, result)


def test_unknown_printf_placeholders_stand_in_as_plain_ones_and_come_back_in_order():
    known = {"%s", "%d"}
    assert stand_in_placeholders("%.250s is %s, %-4d", known) == "%s is %s, %d"
    assert stand_in_placeholders("%lu and %(n)s and %.2f", known) == "%lu and %(n)s and %.2f"  # no plain stand-in
    assert restore_placeholders("%.250s is %s, %-4d", "%s est %s, %d") == "%.250s est %s, %-4d"
    assert restore_placeholders("%.250s is %s", "%s est") == "%s est"  # a count that differs: untouched
