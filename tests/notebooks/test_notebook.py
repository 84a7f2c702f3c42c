"""A real notebook (tests/notebooks/explain.ipynb) executed with nbclient on an ipykernel:
``attnlab.explain`` and ``attnlab.explore`` display inline; their HTML outputs, put in one
page as Jupyter would, render in headless Chromium with no network: the report's table in
one sandboxed iframe, the explorer (its own script, ready) in the other."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from attnlab.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from browser import file_url, launch, wait_until  # noqa: E402  (the explorer tests' Chromium launcher)

NOTEBOOK = Path(__file__).with_name("explain.ipynb")


def executed(tmp_path, monkeypatch) -> list[str]:
    ckpt = tmp_path / "lm"
    assert main(["train", "lm", "--preset", "tiny", "--context", "32", "--batch-size", "2", "--max-chars", "20000",
                 "--final-eval", "none", "--eval-every", "0", "--steps", "2", "--quiet", "--out", str(ckpt)]) == 0
    monkeypatch.setenv("ATTNLAB_CKPT", str(ckpt))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]


def test_the_notebook_shows_explain_and_explore_offline(tmp_path, monkeypatch):
    report, explorer = executed(tmp_path, monkeypatch)
    for shown in (report, explorer):
        assert shown.startswith("<iframe") and 'sandbox="allow-scripts"' in shown and "srcdoc=" in shown
    page = tmp_path / "notebook.html"
    page.write_text(f"<!doctype html><html><body><div>{report}</div><div>{explorer}</div></body></html>")
    pw, browser = launch()
    try:
        tab = browser.new_page()
        errors, requests = [], []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("request", lambda r: requests.append(r.url))
        tab.goto(file_url(page))
        wait_until(tab, "document.querySelectorAll('iframe').length === 2")
        frames = [f for f in tab.frames if f != tab.main_frame]
        assert len(frames) == 2
        table, explore = frames
        wait_until(table, "document.querySelectorAll('table tr').length >= 5")  # header + 4 methods
        text = table.evaluate("document.body.innerText")
        assert all(m in text for m in ("integrated_gradients", "saliency", "rollout", "random", "aopc"))
        wait_until(explore, "document.body && document.body.dataset.ready === '1'")
        assert explore.evaluate("document.querySelectorAll('canvas').length") >= 1
        assert [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))] == []
        assert errors == []
    finally:
        browser.close()
        pw.stop()
