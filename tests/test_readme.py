"""The README's Python example of the apps runs as written (in a scratch folder)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_apps_example_runs(tmp_path, monkeypatch):
    text = README.read_text(encoding="utf-8")
    section = text.split("## Every task from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert (tmp_path / "lm.png").read_bytes()[:4] == b"\x89PNG"
    assert "<html" in (tmp_path / "tr.html").read_text()[:200].lower()
    assert namespace["explained"].attentions.entries()[0].kind == "causal"
