"""`attnlab train lm` and `attnlab generate` on tiny settings: the run folder loads in
transformers with equal logits, resume continues with the losses of a straight run,
generation streams the same text the library returns, bad input is one line + exit 2."""

from __future__ import annotations

import re

import pytest
import torch
import transformers

from attnlab.apps.lm import complete, load
from attnlab.cli.main import main
from attnlab.io import read_json

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(400))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "code.py"
    path.write_text(TEXT)
    return path


def train_args(data, out, steps):
    return ["train", "lm", "--data", str(data), "--preset", "tiny", "--context", "32", "--batch-size", "4",
            "--steps", str(steps), "--eval-every", "0", "--warmup", "2", "--quiet", "--out", str(out)]


@pytest.fixture(scope="module")
def ckpt(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "lm"
    assert main(train_args(data, out, 12)) == 0
    return out


def test_run_folder_is_a_transformers_gpt2(ckpt):
    model, tokenizer = load(ckpt)
    hf = transformers.GPT2LMHeadModel.from_pretrained(ckpt).eval()
    ids = torch.tensor([tokenizer.encode("def f3(x):\n")])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, hf(ids).logits, atol=1e-5, rtol=0)
    state = read_json(ckpt / "trainer_state.json")
    assert state["step"] == 12 and {"val_loss", "bits_per_char", "perplexity"} <= set(state["metrics"])
    final = read_json(ckpt / "final_eval.json")  # all of the validation text, both ways
    assert final["sliding_stride"] == 16 and {"bits_per_char", "sliding_bits_per_char"} <= set(final)
    assert 0 < final["sliding_bits_per_char"] < 8 and 0 < final["bits_per_char"] < 8


def test_resume_continues_the_run(data, tmp_path):
    out = tmp_path / "lm"
    assert main(train_args(data, out, 4)) == 0
    first = read_json(out / "trainer_state.json")["losses"]
    assert main(train_args(data, out, 7) + ["--resume"]) == 0
    state = read_json(out / "trainer_state.json")
    assert state["step"] == 7 and state["losses"][:4] == first and len(state["losses"]) == 7


def test_generate_streams_the_library_output(ckpt, capsys):
    assert main(["generate", "--ckpt", str(ckpt), "--prompt", "def f", "--max-new-tokens", "20"]) == 0
    out = capsys.readouterr().out
    model, tokenizer = load(ckpt)
    assert out == "def f" + complete(model, tokenizer, "def f", 20) + "\n"
    assert main(["generate", "--ckpt", str(ckpt), "--prompt", "def f", "--top-k", "3", "--temperature", "0.8"]) == 0
    capsys.readouterr()
    assert main(["generate", "--ckpt", str(ckpt), "def f", "--max-new-tokens", "20"]) == 0  # positional text
    assert capsys.readouterr().out == "def f" + complete(model, tokenizer, "def f", 20) + "\n"


def test_size_flags_are_refused_before_any_output(ckpt, tmp_path, capsys):
    for value, limit in (("-5", ">= 1"), ("100001", "at most 100,000")):
        code = main(["generate", "--ckpt", str(ckpt), "def f", "--max-new-tokens", value])
        captured = capsys.readouterr()
        assert captured.out == ""  # the prompt is not echoed before the error
        assert_one_line_error(code, captured.err, f"--max-new-tokens: .*{limit}")
    code = main(["generate", "--ckpt", str(ckpt), "def f", "--prompt", "def g"])
    assert_one_line_error(code, capsys.readouterr().err, "once")
    code = main(["translate", "--ckpt", str(tmp_path / "none"), "--beam", "100000", "the cat ."])
    assert_one_line_error(code, capsys.readouterr().err, "--beam: at most 64, got 100,000")
    code = main(["generate", "--ckpt", str(ckpt / "model.safetensors"), "def f"])
    assert_one_line_error(code, capsys.readouterr().err, "is a file; give the folder that holds it")
    export = tmp_path / "export"
    export.mkdir()
    (export / "export.json").write_text("{}")
    for command in (["translate", "the cat ."], ["generate", "def"], ["fill-mask", "[MASK]"], ["classify", "x"]):
        code = main([command[0], "--ckpt", str(export), *command[1:]])
        assert_one_line_error(code, capsys.readouterr().err, "this is an ONNX export: add --runtime onnx")


def assert_one_line_error(code: int, err: str, pattern: str) -> None:
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert re.search(pattern, err), err


def test_bad_input_is_one_line(ckpt, tmp_path, capsys):
    code = main(["generate", "--ckpt", str(ckpt), "--prompt", "x" * 40])
    assert_one_line_error(code, capsys.readouterr().err, "context of 32 tokens")
    code = main(["generate", "--ckpt", str(tmp_path / "nope"), "--prompt", "x"])
    assert_one_line_error(code, capsys.readouterr().err, "checkpoint folder not found")
    code = main(["train", "lm", "--data", str(tmp_path / "missing.txt"), "--quiet", "--out", str(tmp_path / "o")])
    assert_one_line_error(code, capsys.readouterr().err, "no such file")
    code = main(["generate", "--ckpt", str(ckpt), "--prompt", "def", "--top-p", "1.5"])
    assert_one_line_error(code, capsys.readouterr().err, "top_p")


def test_byte_level_bpe_run(data, tmp_path, capsys):
    out = tmp_path / "bpe"
    assert main(train_args(data, out, 3) + ["--tokenizer", "bpe", "--vocab-size", "300"]) == 0
    model, tokenizer = load(out)
    assert model.config.vocab_size == tokenizer.vocab_size == 300
    assert "bits/char" in capsys.readouterr().out
    assert main(["generate", "--ckpt", str(out), "--prompt", "def f1", "--max-new-tokens", "5"]) == 0


def test_max_minutes_fits_the_schedule_and_resume_keeps_it(data, tmp_path, capsys):
    """Without --steps, --max-minutes sizes the schedule; --resume continues that schedule."""
    out = tmp_path / "lm"
    args = train_args(data, out, 0)
    del args[args.index("--steps"): args.index("--steps") + 2]
    assert main([*args, "--max-minutes", "0.05"]) == 0  # start-up and the final evaluation included
    fitted = read_json(out / "trainer_state.json")["config"]["steps"]
    assert fitted >= 1
    assert main([*args, "--resume"]) == 0  # no --max-minutes now: the recorded schedule, not 2000
    assert read_json(out / "trainer_state.json")["config"]["steps"] == fitted
