"""Same seed, same run: every ``attnlab train`` command twice with one seed gives identical
losses (dropout on), and another seed gives other losses — the model, the data order and
dropout all come from the seed."""

from __future__ import annotations

import pytest

from attnlab.cli.main import main
from attnlab.io import read_json

STEPS = ["--steps", "3", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    text = root / "code.py"
    text.write_text("".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(300)))
    docs = root / "docs.txt"
    docs.write_text("\n\n".join(f"alpha beta {i} gamma.\ndelta file {i} open.\nthe list {i} sorts." for i in range(40)))
    mlm = root / "mlm"
    assert main(["train", "mlm", "--data", str(docs), "--preset", "tiny", "--vocab-size", "60", "--batch-size", "4",
                 "--max-len", "16", "--out", str(mlm), *STEPS]) == 0
    return {"text": text, "docs": docs, "mlm": mlm}


COMMANDS = {
    "translate": lambda f: ["translate", "--corpus", "tiny", "--preset", "tiny", "--batch-size", "8", "--dropout", "0.3"],
    "seq2seq": lambda f: ["seq2seq", "--corpus", "tiny", "--preset", "tiny", "--batch-size", "8", "--dropout", "0.3"],
    "lm": lambda f: ["lm", "--data", str(f["text"]), "--preset", "tiny", "--context", "32", "--batch-size", "2",
                     "--final-eval", "none", "--eval-every", "0", "--dropout", "0.3"],
    "mlm": lambda f: ["mlm", "--data", str(f["docs"]), "--preset", "tiny", "--vocab-size", "60", "--batch-size", "4",
                      "--max-len", "16", "--dropout", "0.3"],
    "classify": lambda f: ["classify", "--ckpt", str(f["mlm"]), "--max-examples", "200", "--batch-size", "8",
                           "--dropout", "0.3"],
    "vit": lambda f: ["vit", "--batch-size", "8", "--dropout", "0.3"],
    "gat": lambda f: ["gat", "--seeds", "1"],
    "han": lambda f: ["han", "--seeds", "1"],
}


def losses(out, command: str, seed: int) -> list[float]:
    state = out / "seeds" / str(seed) / "trainer_state.json" if command in ("gat", "han") else out / "trainer_state.json"
    return read_json(state)["losses"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_same_seed_same_losses(command, files, tmp_path):
    args = COMMANDS[command](files)
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / name
        assert main(["train", *args, "--seed", str(seed), "--out", str(out), *STEPS]) == 0
        runs[name] = losses(out, command, seed)
    assert len(runs["a"]) == 3
    assert runs["a"] == runs["b"]  # bit for bit
    assert runs["a"] != runs["c"]
