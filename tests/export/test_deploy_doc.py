"""docs/deploy.md's onnxruntime-only generation loop runs as written, without attnlab, and
gives the tokens attnlab's greedy generation gives."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from attnlab.data.tokenizer import WordTokenizer  # noqa: E402
from attnlab.export import export_onnx, load_runtime  # noqa: E402
from attnlab.models import GPT  # noqa: E402
from attnlab.models.gpt import gpt_config  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def snippet() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- deploy-snippet -->\n```python\n(.*?)```", text, re.S)
    assert match, "docs/deploy.md: the marked python block is missing"
    return match.group(1)


def test_snippet_is_short_and_needs_no_attnlab():
    code = snippet()
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 25
    tree = ast.parse(code)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"json", "numpy", "onnxruntime", "tokenizers"}


def test_snippet_generates_attnlabs_greedy_tokens(tmp_path):
    torch.manual_seed(0)
    tokenizer = WordTokenizer.train(["def fib n return fib n minus one plus fib n minus two"] * 3)
    model = GPT(gpt_config("tiny", vocab_size=64, context_length=32)).eval()
    ckpt = tmp_path / "lm"
    model.save_pretrained(ckpt)
    tokenizer.save(ckpt)
    out = export_onnx(ckpt, tmp_path / "lm-onnx")
    code = snippet().replace('folder = "runs/lm-onnx"', f"folder = {str(out)!r}")
    guard = "import sys; sys.modules['attnlab'] = None; sys.modules['torch'] = None\n"  # importing either fails
    run = subprocess.run([sys.executable, "-c", guard + code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    tokens = ast.literal_eval(run.stdout.splitlines()[0])
    prompt = tokenizer.encode("def fib")
    expected = load_runtime(out).generate(torch.tensor([prompt]), 20)[0].tolist()
    assert tokens == expected == model.generate(torch.tensor([prompt]), 20)[0].tolist()
