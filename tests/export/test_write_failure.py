"""``attnlab export`` whose write fails (here ``ulimit -f``: ``EFBIG``, real, in a child
process) prints one line naming the folder and the reason, no traceback, and the export
folder that was there before is byte for byte intact (``--overwrite`` swaps folders only
once the new one is whole)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from attnlab.data.tokenizer import WordTokenizer  # noqa: E402
from attnlab.export import export_onnx  # noqa: E402
from attnlab.models import GPT  # noqa: E402
from attnlab.models.gpt import gpt_config  # noqa: E402

CHILD = r"""
import resource, signal, sys
from attnlab.cli.main import run
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))  # < the graphs
sys.argv = ["attnlab", *sys.argv[1:]]
sys.exit(run())
"""


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_export_write_is_one_line_and_the_previous_export_survives(tmp_path):
    torch.manual_seed(0)
    ckpt, out = tmp_path / "lm", tmp_path / "lm-onnx"
    GPT(gpt_config("tiny", vocab_size=32, context_length=16)).save_pretrained(ckpt)
    WordTokenizer.train(["a b c d e f g"]).save(ckpt)
    export_onnx(ckpt, out)
    before = digest(out)
    done = subprocess.run([sys.executable, "-c", CHILD, "export", "--ckpt", str(ckpt), "--out", str(out),
                           "--overwrite"], capture_output=True, text=True, timeout=600)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert lines[-1].startswith("attnlab: error:") and str(out) in lines[-1] and "File too large" in lines[-1], lines
    assert digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lm", "lm-onnx"]  # no half-written folder left
