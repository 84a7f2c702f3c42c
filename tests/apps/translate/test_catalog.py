"""The .po filler on catalogs written here: plurals, placeholders of every style, fuzzy
flags, obsolete entries, a header-only file, CRLF and ISO-8859-1 files, refusals, an
interrupted write; msgfmt --check accepts the result where msgfmt is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import polib
import pytest

from attnlab.apps.translate import catalog as catalog_module
from attnlab.apps.translate.catalog import fill_catalog
from attnlab.errors import AttnlabError

HEADER = '''# French translations for demo.
# Copyright (C) 2026 Demo
#
msgid ""
msgstr ""
"Project-Id-Version: demo 1.0\\n"
"Report-Msgid-Bugs-To: \\n"
"PO-Revision-Date: 2026-12-07 10:00+0100\\n"
"Last-Translator: A <a@example.org>\\n"
"Language-Team: French\\n"
"Language: fr\\n"
"MIME-Version: 1.0\\n"
"Content-Type: text/plain; charset={charset}\\n"
"Content-Transfer-Encoding: 8bit\\n"
"Plural-Forms: nplurals=2; plural=(n > 1);\\n"
'''

ENTRIES = '''
#. TRANSLATORS: the menu item
#: src/main.c:10
msgid "_Open"
msgstr ""

#: src/main.c:11
msgid "Save"
msgstr "Enregistrer"

#: src/main.c:12
#, c-format
msgid "Could not open %s"
msgstr ""

#: src/main.c:13
#, c-format
msgid "%d file"
msgid_plural "%d files"
msgstr[0] ""
msgstr[1] ""

#: src/main.c:14
#, fuzzy
msgid "Close"
msgstr "Fermé"

#: src/app.py:1
#, python-format
msgid "Copy %(count)d items to {0} in $HOME"
msgstr ""

#: src/app.py:2
#, c-format
msgid "%1$s of %2$s"
msgstr ""

#: src/ui.c:3
msgid "<b>Hello</b> {name}"
msgstr ""

#: src/ui.c:4
#, c-format
msgid "Print %s\\n"
msgstr ""

#: src/ui.c:5
msgid "Lost %s"
msgstr ""

#~ msgid "Old message"
#~ msgstr ""
'''

FRENCH = {
    "Open": "Ouvrir", "Could not open %s": "Impossible d'ouvrir %s", "%d file": "%d fichier",
    "%d files": "%d fichiers", "Copy %(count)d items to {0} in $HOME": "Copier %(count)d éléments vers {0} dans $HOME",
    "%1$s of %2$s": "%2$s de %1$s", "<b>Hello</b> {name}": "<b>Bonjour</b> {name}", "Print %s": "Imprimer %s",
    "Lost %s": "Perdu",  # the placeholder went missing: refused
}


def fake_translate(asked: list[list[str]]):
    def translate(texts):
        asked.append(list(texts))
        return [FRENCH.get(t) for t in texts]
    return translate


def write(path: Path, text: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def msgfmt_check(path: Path) -> None:
    if shutil.which("msgfmt") is None:
        return
    result = subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_fills_untranslated_entries_keeps_the_rest(tmp_path):
    src = write(tmp_path / "fr.po", HEADER.format(charset="UTF-8") + ENTRIES)
    before = src.read_bytes()
    asked: list[list[str]] = []
    report = fill_catalog(src, tmp_path / "out.po", fake_translate(asked), language="fr")
    assert report.line() == "filled 7, kept 2, refused 1"
    assert src.read_bytes() == before
    out = polib.pofile(str(tmp_path / "out.po"))
    by_id = {e.msgid: e for e in out}
    assert by_id["_Open"].msgstr == "_Ouvrir"  # the accelerator put back on the first letter
    assert by_id["Could not open %s"].msgstr == "Impossible d'ouvrir %s"
    assert by_id["%d file"].msgstr_plural == {0: "%d fichier", 1: "%d fichiers"}
    assert by_id["Copy %(count)d items to {0} in $HOME"].msgstr == "Copier %(count)d éléments vers {0} dans $HOME"
    assert by_id["%1$s of %2$s"].msgstr == "%2$s de %1$s"
    assert by_id["<b>Hello</b> {name}"].msgstr == "<b>Bonjour</b> {name}"
    assert by_id["Print %s\n"].msgstr == "Imprimer %s\n"  # trailing newline kept, as msgfmt wants
    assert by_id["Lost %s"].msgstr == "" and "fuzzy" not in by_id["Lost %s"].flags
    assert report.refused_messages == ["Lost %s"]
    for msgid in ("_Open", "Could not open %s", "%d file", "Print %s\n"):
        assert "fuzzy" in by_id[msgid].flags
    assert by_id["Could not open %s"].flags == ["c-format", "fuzzy"]
    # translated entries exactly as they were, fuzzy ones too; comments, references, header
    original = {e.msgid: e for e in polib.pofile(str(src))}
    for msgid in ("Save", "Close"):
        assert str(by_id[msgid]) == str(original[msgid])
    assert by_id["_Open"].comment == "TRANSLATORS: the menu item"
    assert by_id["_Open"].occurrences == [("src/main.c", "10")]
    assert out.metadata == polib.pofile(str(src)).metadata
    assert out.header == "French translations for demo.\nCopyright (C) 2026 Demo\n"
    assert [(e.msgid, e.msgstr) for e in out.obsolete_entries()] == [("Old message", "")]
    # the model is asked each distinct message once, accelerators off, whitespace trimmed
    assert sorted(t for batch in asked for t in batch) == sorted(
        {"Open", "Could not open %s", "%d file", "%d files", "Copy %(count)d items to {0} in $HOME", "%1$s of %2$s",
         "<b>Hello</b> {name}", "Print %s", "Lost %s"})
    msgfmt_check(tmp_path / "out.po")


@pytest.mark.parametrize("styles", [
    ("Remove %s", "Supprimer %d"), ("Remove %(name)s", "Supprimer %(nom)s"), ("Remove {0}", "Supprimer {1}"),
    ("Remove {name}", "Supprimer {nom}"), ("Remove %1$s", "Supprimer"), ("Remove $VAR", "Supprimer $VARIABLE"),
    ("<b>Remove</b>", "<b>Supprimer"), ("%s of %d", "%d de %s %s"),
])
def test_a_translation_that_loses_a_placeholder_is_refused(tmp_path, styles):
    source, wrong = styles
    src = write(tmp_path / "fr.po", HEADER.format(charset="UTF-8") + f'\nmsgid "{source}"\nmsgstr ""\n')
    report = fill_catalog(src, tmp_path / "out.po", lambda texts: [wrong for _ in texts])
    assert (report.filled, report.refused) == (0, 1)
    assert polib.pofile(str(tmp_path / "out.po")).find(source).msgstr == ""


def test_header_only_file_and_template(tmp_path):
    src = write(tmp_path / "empty.po", HEADER.format(charset="UTF-8"))
    report = fill_catalog(src, tmp_path / "out.po", lambda texts: pytest.fail("nothing to translate"))
    assert report.line() == "filled 0, kept 0, refused 0"
    assert polib.pofile(str(tmp_path / "out.po")).metadata == polib.pofile(str(src)).metadata
    template = HEADER.format(charset="CHARSET").replace('"Language: fr\\n"', '"Language: \\n"').replace('"Plural-Forms: nplurals=2; plural=(n > 1);\\n"\n',
                                                        '"Plural-Forms: nplurals=INTEGER; plural=EXPRESSION;\\n"\n')
    pot = write(tmp_path / "demo.pot", template + ENTRIES)
    report = fill_catalog(pot, tmp_path / "fr.po", fake_translate([]), language="fr")
    out = polib.pofile(str(tmp_path / "fr.po"))
    assert out.metadata["Plural-Forms"] == "nplurals=2; plural=(n > 1);" and out.metadata["Language"] == "fr"
    assert "charset=UTF-8" in out.metadata["Content-Type"]
    assert out.find("%d file").msgstr_plural == {0: "%d fichier", 1: "%d fichiers"}
    msgfmt_check(tmp_path / "fr.po")
    with pytest.raises(AttnlabError, match="Plural-Forms"):
        fill_catalog(pot, tmp_path / "xx.po", fake_translate([]), language="xx")


def test_one_plural_form_takes_the_singular(tmp_path):
    text = HEADER.format(charset="UTF-8").replace("nplurals=2; plural=(n > 1);", "nplurals=1; plural=0;")
    src = write(tmp_path / "zh.po", text + '\nmsgid "%d file"\nmsgid_plural "%d files"\nmsgstr[0] ""\n')
    fill_catalog(src, tmp_path / "out.po", lambda texts: [{"%d file": "%d 个文件"}.get(t, "x") for t in texts])
    assert polib.pofile(str(tmp_path / "out.po")).find("%d file").msgstr_plural == {0: "%d 个文件"}
    msgfmt_check(tmp_path / "out.po")


def test_crlf_file_stays_crlf(tmp_path):
    src = write(tmp_path / "fr.po", HEADER.format(charset="UTF-8") + ENTRIES, newline="\r\n")
    fill_catalog(src, tmp_path / "out.po", fake_translate([]))
    data = (tmp_path / "out.po").read_bytes()
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert polib.pofile(str(tmp_path / "out.po")).find("Could not open %s").msgstr == "Impossible d'ouvrir %s"
    msgfmt_check(tmp_path / "out.po")


def test_iso_8859_1_file_keeps_its_charset_or_becomes_utf8(tmp_path):
    text = HEADER.format(charset="ISO-8859-1") + '\nmsgid "Open"\nmsgstr ""\n\nmsgid "Save"\nmsgstr "Sauvegardé"\n'
    src = write(tmp_path / "fr.po", text, encoding="iso-8859-1")
    report = fill_catalog(src, tmp_path / "out.po", lambda texts: ["Ouvré" for _ in texts])
    assert not report.charset_changed
    data = (tmp_path / "out.po").read_bytes()
    assert "Ouvré".encode("iso-8859-1") in data and "Sauvegardé".encode("iso-8859-1") in data
    msgfmt_check(tmp_path / "out.po")
    report = fill_catalog(src, tmp_path / "out2.po", lambda texts: ["Œuvrir…" for _ in texts])  # not in Latin-1
    out = polib.pofile(str(tmp_path / "out2.po"))
    assert report.charset_changed and "charset=UTF-8" in out.metadata["Content-Type"]
    assert (out.find("Open").msgstr, out.find("Save").msgstr) == ("Œuvrir…", "Sauvegardé")
    msgfmt_check(tmp_path / "out2.po")


def test_interrupted_write_leaves_every_file_untouched(tmp_path, monkeypatch):
    src = write(tmp_path / "fr.po", HEADER.format(charset="UTF-8") + ENTRIES)
    before = src.read_bytes()

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog_module.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        fill_catalog(src, src, fake_translate([]))  # in place
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fr.po"]  # no temporary file left


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(AttnlabError, match="not found"):
        fill_catalog(tmp_path / "missing.po", tmp_path / "out.po", fake_translate([]))
    bad = write(tmp_path / "bad.po", 'msgid "a"\nfoo bar\n')
    with pytest.raises(AttnlabError, match="bad.po"):
        fill_catalog(bad, tmp_path / "out.po", fake_translate([]))
