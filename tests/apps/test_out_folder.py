"""The output folder rule of every train command (``apps.common.check_out``).

``--overwrite`` means a clean folder (nothing of the replaced run is carried into the new
one); a folder holding only other files is not a run and is never emptied; ``--resume``
into a run of another model kind names both kinds; a folder a live run owns is refused
naming its PID (``--wait``: awaited). Each error is one line, exit status 2.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from attnlab.apps.common import check_out
from attnlab.cli.main import main
from attnlab.errors import AttnlabError
from attnlab.io import read_json
from attnlab.training import out_lock

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(200))
TRANSLATOR = ["train", "seq2seq", "--corpus", "tiny", "--preset", "tiny", "--batch-size", "8", "--steps", "2",
              "--quiet"]


def lm_args(tmp_path, out):
    data = tmp_path / "code.py"
    data.write_text(TEXT)
    return ["train", "lm", "--data", str(data), "--preset", "tiny", "--context", "32", "--batch-size", "4",
            "--steps", "2", "--eval-every", "0", "--warmup", "1", "--quiet", "--out", str(out)]


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def translator(tmp_path):
    out = tmp_path / "translator"
    assert main([*TRANSLATOR, "--out", str(out)]) == 0
    assert (out / "translator.json").is_file()
    return out


def test_overwrite_leaves_a_clean_folder(translator, tmp_path, capsys):
    tokenizers = sorted(p.name for p in translator.iterdir() if "tokenizer" in p.name)
    assert tokenizers  # the translator's own files, which a GPT run must not inherit
    assert main(lm_args(tmp_path, translator)) == 2
    assert "already holds a run" in one_line(capsys)
    assert main([*lm_args(tmp_path, translator), "--overwrite"]) == 0
    names = {p.name for p in translator.iterdir()}
    assert "translator.json" not in names and not names & set(tokenizers)
    assert read_json(translator / "config.json")["model_type"] == "gpt2"
    assert not (tmp_path / ".translator.new").exists() and not (tmp_path / ".translator.old").exists()


def test_resume_into_another_kind_names_both(translator, tmp_path, capsys):
    assert main([*lm_args(tmp_path, translator), "--resume"]) == 2
    line = one_line(capsys)
    assert f"--resume: --out {translator} holds a 'seq2seq' model; this command trains 'gpt2'" in line


def test_a_folder_of_other_files_is_not_a_run_and_is_never_emptied(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        assert main([*TRANSLATOR, "--out", str(out), *extra]) == 2
        line = one_line(capsys)
        assert line == (f"attnlab: error: --out {out}: not empty (notes.txt) and not an attnlab run; choose a new "
                        "or empty folder (--overwrite replaces a run, never other files)")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_out(empty, resume=False, overwrite=False) == empty  # an empty folder is fine
    out_lock.release(empty)


def test_a_folder_a_live_run_owns_is_refused_naming_its_pid(tmp_path, capsys):
    out = tmp_path / "busy"
    owner = subprocess.Popen([sys.executable, "-c", "import sys; from attnlab.training import out_lock; "
                              f"out_lock.claim({str(out)!r}); print('ok', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline() == "ok\n"
        assert main([*TRANSLATOR, "--out", str(out)]) == 2
        line = one_line(capsys)
        assert line.startswith(f"attnlab: error: --out {out}: in use by a live run (PID {owner.pid}); ")
        assert "--wait" in line
        with pytest.raises(AttnlabError, match=rf"PID {owner.pid}"):
            check_out(out, resume=True, overwrite=False)
    finally:
        owner.stdin.close()
        owner.wait(timeout=60)
    assert check_out(out, resume=False, overwrite=False, wait=True) == out  # the owner is gone: no wait
    out_lock.release(out)


def test_wait_starts_when_the_owner_ends(tmp_path):
    """``--wait`` (a shared train flag) reaches the claim: the command says whom it waits
    for, then trains once the owner is gone."""
    out = tmp_path / "queued"
    owner = subprocess.Popen([sys.executable, "-c", "import sys; from attnlab.training import out_lock; "
                              f"out_lock.claim({str(out)!r}); print('ok', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline() == "ok\n"
    waiter = subprocess.Popen([sys.executable, "-m", "attnlab", *TRANSLATOR, "--out", str(out), "--wait"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    note = waiter.stderr.readline()
    assert note == f"note: --out {out} is in use by a live run (PID {owner.pid}); waiting for it to end\n"
    assert not out.exists()  # nothing done while waiting
    owner.stdin.close()
    owner.wait(timeout=60)
    _, err = waiter.communicate(timeout=300)
    assert waiter.returncode == 0, err[-2000:]
    assert (out / "translator.json").is_file()
