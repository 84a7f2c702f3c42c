"""One vocabulary on the command line: every command that trains or runs a model has the
same flags, an existing run is never replaced silently, defaults are printed once,
``python -m attnlab`` and ``--version`` work, a CUDA device on a CPU machine is one line."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

import attnlab
from attnlab.cli.main import main
from attnlab.io import read_json

TRAIN = ["translate", "seq2seq", "lm", "mlm", "classify", "vit", "gat", "han"]
RUN = ["translate", "generate", "fill-mask", "classify", "viz", "explore", "demo", "compare"]
TRAIN_FLAGS = ["--device", "--seed", "--threads", "--out", "--overwrite", "--resume", "--max-minutes", "--save-every",
               "--steps", "--lr", "--dropout"]


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("task", TRAIN)
def test_every_train_command_has_the_run_flags_and_prints_defaults_once(task, capsys):
    text = _help(["train", task], capsys)
    for flag in TRAIN_FLAGS:
        assert re.search(rf"\s{flag}\b", text), f"train {task}: no {flag}"
    assert "(default: None)" not in text and "(default: False)" not in text
    for paragraph in re.split(r"\n\s+(?=-)", text):
        assert paragraph.count("default") <= 1, paragraph


@pytest.mark.parametrize("command", RUN)
def test_every_command_that_runs_a_model_has_device_and_seed(command, capsys):
    text = _help([command], capsys)
    for flag in ("--device", "--seed"):
        assert re.search(rf"\s{flag}\b", text), f"{command}: no {flag}"


def test_version_and_python_m(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"attnlab {attnlab.__version__}"
    done = subprocess.run([sys.executable, "-m", "attnlab", "--version"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == f"attnlab {attnlab.__version__}"


def test_an_existing_run_is_never_replaced_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "seq2seq", "--corpus", "tiny", "--preset", "tiny", "--batch-size", "8", "--steps", "2", "--quiet",
            "--out", str(out)]
    assert main(args) == 0
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main([*args, "--attention", "location"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--overwrite" in err[0]
    assert (out / "model.safetensors").read_bytes() == before
    assert main([*args, "--attention", "location", "--overwrite"]) == 0
    assert read_json(out / "translator.json")["attention"] == "location"
    assert main([*args, "--resume", "--overwrite"]) == 2  # contradictory


def test_out_must_be_a_writable_folder(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["train", "gat", "--steps", "2", "--quiet", "--out", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert a_file.read_text() == "x" and not list(tmp_path.glob(".*"))


def test_demo_resumes_and_refuses_to_replace(tmp_path, capsys):
    args = ["demo", "--corpus", "tiny", "--preset", "tiny", "--steps", "4", "--quiet", "--out", str(tmp_path / "d")]
    assert main(args) == 0
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert read_json(tmp_path / "d" / "model" / "trainer_state.json")["step"] == 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a CPU-only machine")
@pytest.mark.parametrize("argv", [["generate", "--prompt", "x"], ["translate", "a"], ["viz"], ["explore"],
                                  ["fill-mask", "[MASK]"], ["classify", "x.png"]])
def test_cuda_on_a_cpu_machine_is_one_line(argv, tmp_path, capsys):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    assert main([*argv, "--ckpt", str(tmp_path), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("attnlab: error: --device") and "CUDA" in err[0]


def test_bench_outside_a_source_checkout_says_what_it_needs(tmp_path, monkeypatch, capsys):
    import attnlab.cli.bench as bench

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "__file__", str(tmp_path / "site-packages" / "attnlab" / "cli" / "bench.py"))
    assert main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "source checkout" in err[0] and "pip install -e" in err[0]


@pytest.mark.parametrize("command", ["demo", "compare"])
def test_minutes_is_a_deprecated_alias_of_max_minutes(command, capsys):
    from attnlab.apps.compare import CompareSettings
    from attnlab.apps.demo import DemoSettings
    from attnlab.cli.main import build_parser
    from attnlab.cli.options import settings

    cls = {"demo": DemoSettings, "compare": CompareSettings}[command]
    args = build_parser().parse_args([command, "--minutes", "2"])
    assert settings(cls, args).max_minutes == 2
    assert "--minutes is deprecated" in capsys.readouterr().err
    args = build_parser().parse_args([command, "--max-minutes", "3"])
    assert settings(cls, args).max_minutes == 3
    assert "deprecated" not in capsys.readouterr().err


def test_an_unknown_gettext_language_names_the_closest_in_one_short_line(tmp_path, capsys):
    from collections import Counter

    from attnlab.data.gettext_corpus import closest_languages

    languages = Counter({"pt": 5, "pt_BR": 9, "xh": 2, "de": 30})
    assert closest_languages("pt_PT", languages) == ["pt_BR", "pt"]
    assert closest_languages("xx", languages) == ["xh"]
    assert closest_languages("qqq", languages) == []
    code = main(["train", "translate", "--data", "gettext:xx", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and len(err) < 300, err
    assert "python -m attnlab.data.gettext_corpus --list" in err
    listing = subprocess.run([sys.executable, "-m", "attnlab.data.gettext_corpus", "--list"], capture_output=True,
                             text=True, timeout=300)
    assert listing.returncode == 0 and listing.stdout.strip().splitlines()[-1].endswith("--data gettext:LANG")


def test_explore_out_is_a_file_or_a_folder(tmp_path):
    from attnlab.apps.explorer import page_path

    (tmp_path / "pages").mkdir()
    assert page_path(tmp_path / "pages") == tmp_path / "pages" / "explorer.html"  # an existing folder
    assert page_path(tmp_path / "new") == tmp_path / "new" / "explorer.html"  # no suffix: a folder
    assert page_path(tmp_path / "mine.html") == tmp_path / "mine.html"


def test_size_flags_are_bounded_with_the_limit_in_the_message(tmp_path, capsys):
    cases = [(["train", "lm", "--batch-size", "10000000"], "--batch-size: at most 65,536"),
             (["train", "mlm", "--max-len", "100000"], "--max-len: at most 512"),
             (["demo", "--beam", "1000"], "--beam: at most 64"),
             (["classify", "--ckpt", str(tmp_path), "--top-k", "0", "x"], "--top-k: expected an integer >= 1")]
    for argv, message in cases:
        assert main([*argv, "--out", str(tmp_path / "o")] if argv[0] != "classify" else argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o").exists()  # refused before any work
