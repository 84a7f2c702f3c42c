"""`attnlab train translate|seq2seq --data gettext:LANG --catalogs ...` end to end, on
catalogs the test writes (language ``qaa``: ISO 639's code reserved for local use, so no
catalog of the machine joins in)."""

from __future__ import annotations

import re
from pathlib import Path

import polib
import pytest

from attnlab.apps.translate import Translator, attentions
from attnlab.cli.main import main
from attnlab.io import read_json

WORDS = {"file": "wenjian", "open": "dakai", "save": "baocun", "close": "guanbi", "print": "dayin",
         "copy": "fuzhi", "page": "ye", "folder": "mulu", "new": "xin", "delete": "shanchu"}


def write_program(folder: Path, name: str, n: int) -> None:
    po = polib.POFile()
    po.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": "qaa"}
    keys = sorted(WORDS)
    for i in range(n):
        a, b = keys[i % len(keys)], keys[(i * 3 + len(name)) % len(keys)]
        po.append(polib.POEntry(msgid=f"{a.title()} {b} %s {name}{i}", msgstr=f"{WORDS[a]}{WORDS[b]} %s {name}{i}"))
    path = folder / "qaa" / "LC_MESSAGES" / f"{name}.po"
    path.parent.mkdir(parents=True, exist_ok=True)
    po.save(str(path))


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("catalogs")
    for name in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot"):
        write_program(folder, name, 30)
    return folder


@pytest.mark.parametrize("task, extra", [("translate", ["--preset", "tiny"]), ("seq2seq", ["--preset", "tiny"])])
def test_train_and_translate_from_gettext(task, extra, catalogs: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    argv = ["train", task, "--data", "gettext:qaa", "--catalogs", str(catalogs), *extra,
            "--steps", "10", "--vocab-size", "300", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"exact [\d.]+% \| placeholders [\d.]+% of \d+", printed), printed
    setup = read_json(out / "translator.json")
    assert setup["data"] == "gettext:qaa" and setup["catalogs"] == [str(catalogs)] and setup["tokenizer"] == "byte_bpe"
    translator = Translator.load(out)
    assert translator.src_tokenizer.tokens("Open %s") [-1] == "%s"  # the placeholder is one token
    assert main(["translate", "--ckpt", str(out), "Open file %s"]) == 0
    explained = attentions(translator, ["Open file %s"], ["dakaiwenjian %s"])
    assert "".join(explained.labels["source"][0]).startswith("Open file %s")  # readable, not byte symbols


def test_catalogs_without_gettext_data_is_one_line(tmp_path: Path, capsys):
    code = main(["train", "translate", "--catalogs", str(tmp_path), "--steps", "1", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "gettext:LANG" in err
    code = main(["train", "translate", "--data", "gettext:qaa", "--steps", "1", "--out", str(tmp_path / "y")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "gettext_corpus --list" in err
