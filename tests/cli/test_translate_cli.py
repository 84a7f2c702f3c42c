"""Smoke tests of `attnlab train translate`, `translate`, `viz` and `demo` on tiny settings,
plus the bad-input contract (one line on stderr, exit code 2, no traceback) and resume
exactness of a translation run (N steps straight == N/2, stop, resume N/2: equal losses).
"""

from __future__ import annotations

import io
import re
import sys

import pytest

from attnlab.apps.translate import Translator, TranslatorSetup, paper_train_config, train_translator
from attnlab.cli.main import main
from attnlab.io import read_json

TINY = ["--corpus", "tiny", "--preset", "tiny", "--quiet"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("translate") / "model"
    assert main(["train", "translate", *TINY, "--steps", "15", "--out", str(out)]) == 0
    return out


def run(argv, capsys, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, pattern: str) -> None:
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert re.search(pattern, err), err


def test_train_writes_a_translator_checkpoint(ckpt):
    for name in ("config.json", "model.safetensors", "trainer_state.json", "translator.json",
                 "src_tokenizer/tokenizer.json", "tgt_tokenizer/tokenizer_config.json"):
        assert (ckpt / name).is_file(), name
    assert read_json(ckpt / "trainer_state.json")["step"] == 15
    assert Translator.load(ckpt).model.config.d_model == 32


def test_translate_arguments_and_stdin_with_empty_lines(ckpt, capsys, monkeypatch):
    code, out, _ = run(["translate", "--ckpt", str(ckpt), "the cat sees a dog ."], capsys)
    assert code == 0 and len(out.splitlines()) == 1
    code, out, err = run(["translate", "--ckpt", str(ckpt), "--beam", "3"], capsys,
                         stdin="the cat sleeps .\n\nzzunknownword sleeps .\n", monkeypatch=monkeypatch)
    assert code == 0 and len(out.splitlines()) == 3  # one line out per line in; <unk> for the unknown word
    assert out.splitlines()[1] == "" and "1 empty line(s) left empty" in err


def test_translate_bad_input(ckpt, tmp_path, capsys):
    code, _, err = run(["translate", "--ckpt", str(ckpt), " ".join(["cat"] * 100)], capsys)
    assert_one_line_error(code, err, r"100 tokens.*max_len=64")
    code, _, err = run(["translate", "--ckpt", str(tmp_path / "missing"), "a cat ."], capsys)
    assert_one_line_error(code, err, r"checkpoint folder not found")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((ckpt / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    code, _, err = run(["translate", "--ckpt", str(broken), "a cat ."], capsys)
    assert_one_line_error(code, err, r"model.safetensors: not a readable safetensors file")
    (broken / "config.json").write_text("{not json")
    code, _, err = run(["viz", "--ckpt", str(broken)], capsys)
    assert_one_line_error(code, err, r"config.json: not valid JSON")


def test_viz_writes_a_png_and_names_supported_types(ckpt, tmp_path, capsys):
    code, printed, _ = run(["viz", "--ckpt", str(ckpt), "the cat sees a dog .", "--out", str(tmp_path)], capsys)
    out = tmp_path / "transformer_attention.png"
    assert code == 0 and str(out) in printed
    assert out.read_bytes()[:4] == b"\x89PNG"
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "no-such-model"}')
    code, _, err = run(["viz", "--ckpt", str(other)], capsys)
    assert_one_line_error(code, err, r"model_type 'no-such-model' is not one attnlab knows \(\[.*'transformer'")


def test_demo_ends_with_the_summary_line(tmp_path, capsys):
    code, out, _ = run(["demo", *TINY, "--steps", "8", "--out", str(tmp_path / "demo")], capsys)
    assert code == 0
    assert re.fullmatch(r"BLEU \d+\.\d \| chrF \d+\.\d \| AER \d\.\d{3} \((head-averaged map|layer \d+ head \d+)\) "
                        r"\| \d+\.\d min", out.strip().splitlines()[-1])
    assert "best single head: layer" in out and "head-averaged map (every head of every decoder layer)" in out
    assert "data:image/png;base64," in (tmp_path / "demo" / "report.html").read_text()
    assert '"gold":[[' in (tmp_path / "demo" / "explorer.html").read_text()  # the examples' gold links
    assert (tmp_path / "demo" / "data" / "test.align").is_file()


def test_resume_continues_with_identical_losses(tmp_path):
    setup = TranslatorSetup(corpus="tiny", preset="tiny", model_overrides={"dropout": 0.1}, batch_size=16,
                            eval_sentences=20)

    def fit(out, steps, resume=False):
        config = paper_train_config(
            out_dir=str(out), steps=steps, schedule="constant", warmup_steps=2, progress=False, bf16=False
        )
        return train_translator(setup, config, resume=resume).result

    straight = fit(tmp_path / "straight", 8)
    fit(tmp_path / "halves", 4)
    resumed = fit(tmp_path / "halves", 8, resume=True)
    assert resumed.losses == straight.losses


def test_train_translate_with_guided_alignment(tmp_path, capsys):
    out = tmp_path / "guided"
    code, printed, _ = run(["train", "translate", *TINY, "--steps", "3", "--guided-alignment", "1", "--out", str(out)],
                           capsys)
    assert code == 0 and "AER" in printed
    assert read_json(out / "config.json")["alignment_weight"] == 1.0
    code, _, err = run(["train", "translate", *TINY, "--align", str(tmp_path / "x.align"), "--out", str(out)], capsys)
    assert_one_line_error(code, err, "--align")


def test_empty_translations_say_the_model_is_undertrained(ckpt, capsys, monkeypatch):
    from attnlab.apps import translate

    assert translate.undertrained_note(1, 3, 40) is None  # a few empty lines: not the model's state
    assert "undertrained after 40 updates" in translate.undertrained_note(3, 4, 40)
    monkeypatch.setattr(translate, "translate_checked", lambda translator, sentences, **search: [""] * len(sentences))
    code, out, err = run(["translate", "--ckpt", str(ckpt), "a dog .", "the cat ."], capsys)
    steps = translate.checkpoint_steps(ckpt)
    assert code == 0 and out == "\n\n" and steps is not None
    assert f"2 of 2 translations are empty: the model is undertrained after {steps:,} updates" in err


def test_the_readmes_demo_sentences_use_only_the_synthetic_vocabulary():
    """A word the demo's corpus lacks becomes <unk> in the README's own example."""
    from pathlib import Path

    from attnlab.data.synthetic import synthetic_corpus

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    sentences = re.findall(r'--ckpt runs/demo/model[^"\n]*"([^"]+)"', readme)
    assert sentences, "no demo example in the README"
    corpus = synthetic_corpus("default").train
    vocabulary = {w for s in corpus.src for w in s.split()}
    unknown = {w for s in sentences for w in s.split()} - vocabulary
    assert not unknown, f"README demo examples use words the synthetic corpus lacks: {sorted(unknown)}"
