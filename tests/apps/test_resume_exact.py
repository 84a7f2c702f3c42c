"""Resume is exact at real sizes: 4 straight updates equal 2 + stop + resume + 2, bit for bit —
every weight and every loss — for GPT (char-base: products above every size threshold of
kernels/linear.py, the C GELU kernel, and the C causal-attention kernel without attention
dropout or PyTorch's attention with it) and the Transformer translator (small preset, batch
64), with dropout on (so the RNG restore matters). A kernel choice that depended on call
history (not only on the inputs) would break this.

One thread: with several, PyTorch's own CPU kernels can differ in the last bit between two
processes (docs/training.md, "Resume"), which no resume can repeat."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from safetensors.torch import load_file

import attnlab.training.trainer_checkpoints as trainer_module
from attnlab.cli.main import main
from attnlab.data.synthetic import synthetic_corpus
from attnlab.io import read_json


def _keep_step_2(monkeypatch, out, snapshot) -> None:
    """Copy the run's checkpoint of update 2 aside (``--save-every 2``): what a kill right
    after that save leaves, the 4-update schedule included."""
    save = trainer_module.save_checkpoint

    def spy(*args, **kwargs):
        path = save(*args, **kwargs)
        if read_json(out / "trainer_state.json")["step"] == 2:
            shutil.copytree(out, snapshot)
        return path

    monkeypatch.setattr(trainer_module, "save_checkpoint", spy)


def _stop_and_resume(monkeypatch, common: list[str], tmp_path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _keep_step_2(monkeypatch, straight, resumed)
    assert main([*common, "--steps", "4", "--save-every", "2", "--out", str(straight)]) == 0
    monkeypatch.undo()
    assert read_json(resumed / "trainer_state.json")["step"] == 2
    # the resumed session runs in a fresh process, as after a real stop: a kernel choice that
    # depended on how often a shape had been seen would show here
    done = subprocess.run([sys.executable, "-m", "attnlab", *common, "--steps", "4", "--save-every", "2",
                           "--out", str(resumed), "--resume"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    _same_run(straight, resumed)


def _same_run(straight, resumed) -> None:
    assert read_json(straight / "trainer_state.json")["losses"] == read_json(resumed / "trainer_state.json")["losses"]
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    different = [k for k in a if not (a[k].shape == b[k].shape and bool((a[k] == b[k]).all()))]
    assert not different, f"{len(different)} of {len(a)} tensors differ: {different[:5]}"


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "code.py"
    path.write_text("".join(f"def f{i}(x, y):\n    return x * {i} + y - {i % 13}\n\n" for i in range(3000)))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("dropout", ["0.1", "0"])  # 0: attention takes the C causal kernel
def test_gpt_char_base(text, tmp_path, monkeypatch, dropout):
    common = ["train", "lm", "--data", str(text), "--preset", "char-base", "--batch-size", "4", "--context", "256",
              "--dropout", dropout, "--eval-every", "0", "--final-eval", "none", "--warmup", "1", "--threads", "1",
              "--quiet"]
    _stop_and_resume(monkeypatch, common, tmp_path)


@pytest.mark.slow
def test_transformer_translator_small(tmp_path, monkeypatch):
    splits = synthetic_corpus("tiny", seed=0)  # few validation and test pairs: the check is training
    splits.valid, splits.test = splits.valid.subset(list(range(8))), splits.test.subset(list(range(8)))
    splits.save(tmp_path / "data")
    common = ["train", "translate", "--data", str(tmp_path / "data"), "--preset", "small", "--batch-size", "64",
              "--dropout", "0.1", "--warmup", "1", "--threads", "1", "--quiet"]
    _stop_and_resume(monkeypatch, common, tmp_path)
