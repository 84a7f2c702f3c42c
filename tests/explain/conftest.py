"""Tiny checkpoints of every model kind ``attnlab explain`` reads (two training steps each)."""

from __future__ import annotations

import pytest

from attnlab.cli.main import main

RUNS = {
    "transformer": ["translate", "--corpus", "tiny", "--preset", "tiny", "--batch-size", "8"],
    "seq2seq": ["seq2seq", "--corpus", "tiny", "--preset", "tiny", "--batch-size", "8"],
    "gpt2": ["lm", "--preset", "tiny", "--context", "32", "--batch-size", "2", "--max-chars", "20000",
             "--final-eval", "none", "--eval-every", "0"],
    "bert": ["mlm", "--preset", "tiny", "--vocab-size", "80", "--batch-size", "4", "--max-len", "16"],
    "vit": ["vit", "--batch-size", "8"],
    "gat": ["gat", "--seeds", "1"],
    "han": ["han", "--seeds", "1"],
}


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain-ckpts")
    for name, args in RUNS.items():
        assert main(["train", *args, "--out", str(root / name), "--steps", "2", "--quiet"]) == 0
    return {name: root / name for name in RUNS}
