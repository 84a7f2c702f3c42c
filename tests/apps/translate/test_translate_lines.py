"""``attnlab translate`` on lines from stdin (one translation per input line, streamed) and
``--po`` on a trained checkpoint: the command's contract, the model's quality aside."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys

import polib
import pytest

from attnlab.apps import translate
from attnlab.cli.main import main


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("translate") / "model"
    assert main(["train", "translate", "--corpus", "tiny", "--preset", "tiny", "--quiet", "--steps", "10",
                 "--out", str(out)]) == 0
    return out


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_line_batches_stream_and_keep_every_line():
    assert list(translate.line_batches(io.StringIO("a\nb\r\n\nc"), 2)) == [["a", "b"], ["", "c"]]
    assert list(translate.line_batches(Terminal("a\nb\n"), 64)) == [["a"], ["b"]]  # a person sees each at once


def test_stdin_gives_one_line_per_line(ckpt, capsys, monkeypatch):
    lines = ["the cat sleeps .", "", "a dog sees the cat .", "the cat sleeps ."] * 20
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["translate", "--ckpt", str(ckpt), "--batch-size", "7", "--beam", "2"]) == 0
    out, err = capsys.readouterr()
    got = out.split("\n")[:-1]
    assert len(got) == len(lines)
    assert all(g == "" for g, line in zip(got, lines) if not line)
    assert got[0] == got[3] and "20 empty line(s) left empty" in err
    # the same as translating the sentences in one call (batching does not change a translation)
    alone = translate.translate_checked(translate.load(ckpt), ["the cat sleeps .", "a dog sees the cat ."], beam_size=2)
    assert [got[0], got[2]] == [t or "" for t in alone]


def test_po_fills_a_catalog_msgfmt_accepts(ckpt, tmp_path, capsys):
    po = tmp_path / "demo.po"
    po.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n'
                  '"Plural-Forms: nplurals=2; plural=(n > 1);\\n"\n\n'
                  'msgid "the cat sleeps ."\nmsgstr ""\n\nmsgid "a dog"\nmsgstr "un chien"\n\n'
                  'msgid "the cat sees %s"\nmsgstr ""\n')
    assert main(["translate", "--ckpt", str(ckpt), "--po", str(po), "--out", str(tmp_path / "out.po")]) == 0
    out, err = capsys.readouterr()
    filled, kept, refused = (int(w.rstrip(",")) for w in out.split()[1::2])
    assert out.startswith("filled ") and (filled + refused, kept) == (2, 1)
    catalog = polib.pofile(str(tmp_path / "out.po"))
    assert catalog.find("a dog").msgstr == "un chien"
    assert len([e for e in catalog if "fuzzy" in e.flags]) == filled
    assert refused == err.count("refused (placeholders not kept)")
    if shutil.which("msgfmt"):
        subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(tmp_path / "out.po")], check=True)


def test_po_flag_errors(ckpt, tmp_path, capsys):
    assert main(["translate", "--ckpt", str(ckpt), "--po", str(tmp_path / "x.po")]) == 2
    assert "--po and --out go together" in capsys.readouterr().err
    assert main(["translate", "--ckpt", str(ckpt), "--po", str(tmp_path / "x.po"), "--out", str(tmp_path / "o.po")]) == 2
    err = capsys.readouterr().err
    assert "x.po: file not found" in err and "Traceback" not in err
