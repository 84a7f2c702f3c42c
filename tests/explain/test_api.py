"""The Python API: ``attnlab.explain`` and ``attnlab.explore`` (lazy: ``import attnlab``
loads no torch), on a checkpoint folder or on what an app's ``load`` returns; what they
return shows itself in a notebook and saves itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import attnlab
from attnlab.apps import lm
from attnlab.errors import AttnlabError


def test_import_attnlab_stays_light():
    code = "import sys, attnlab; attnlab.explain; assert callable(attnlab.explain); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_explain_is_the_package_and_the_function():
    import attnlab.explain.methods  # importing a submodule binds the package to attnlab.explain

    assert callable(attnlab.explain) and attnlab.explain.methods.METHODS


def test_explain_a_checkpoint_and_a_loaded_model(tiny_checkpoints, tmp_path):
    ckpt = tiny_checkpoints["gpt2"]
    by_path = attnlab.explain(ckpt, "def f(x):", methods=["saliency", "random"], heads=False)
    by_model = attnlab.explain(lm.load(ckpt), ["def f(x):"], methods=["saliency", "random"], heads=False)
    assert by_path.evaluation.table == by_model.evaluation.table
    shown = by_path._repr_html_()
    assert shown.startswith("<iframe") and 'sandbox="allow-scripts"' in shown and "saliency" in shown
    assert json.loads(by_path.save(tmp_path / "r.json").read_text())["ranked"] == by_path.evaluation.ranked()
    assert "<table>" in by_path.save(tmp_path / "r.html").read_text()


def test_explore_inline_and_saved(tiny_checkpoints, tmp_path):
    page = attnlab.explore(lm.load(tiny_checkpoints["gpt2"]), "def f(x):")
    assert page._repr_html_().startswith("<iframe") and "about:srcdoc" in page._repr_html_()
    saved = page.save(tmp_path / "e.html").read_text()
    assert saved == page.page and '<canvas id="view">' in saved and "Content-Security-Policy" in saved


def test_something_else_is_one_clear_error():
    with pytest.raises(AttnlabError, match="expected a checkpoint folder or what an app's load"):
        attnlab.explain(42, ["x"])
