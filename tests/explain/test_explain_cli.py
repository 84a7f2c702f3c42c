"""``attnlab explain`` on the command line: the ranked table, --json of the promised shape
(with the settings it was measured with), --out an offline page, and one line (exit 2, no
traceback) for a user's mistake."""

from __future__ import annotations

import json

import pytest

from attnlab.cli.explain import METHOD_NAMES
from attnlab.cli.main import main
from attnlab.explain.methods import METHODS


def test_the_flag_lists_every_method():
    assert METHOD_NAMES == tuple(METHODS)


def test_table_json_and_page(tiny_checkpoints, tmp_path, capsys):
    out, page = tmp_path / "gpt.json", tmp_path / "gpt.html"
    code = main(["explain", "--ckpt", str(tiny_checkpoints["gpt2"]), "def f(x):", "--methods", "rollout",
                 "saliency", "random", "--json", str(out), "--out", str(page)])
    assert code == 0
    printed = capsys.readouterr().out
    table = [line.split()[0] for line in printed.splitlines() if line.split() and line.split()[0] in METHODS]
    data = json.loads(out.read_text())
    assert table == data["ranked"] and sorted(table) == ["random", "rollout", "saliency"]
    for row in data["methods"].values():
        assert {"aopc", "insertion_auc", "comprehensiveness", "sufficiency"} <= set(row)
    assert {"layer", "head", "importance"} <= set(data["heads"][0]) and data["examples"][0]["units"]
    assert data["settings"] == {"curve_points": "every k up to 64 units, else 11 points + the ERASER bins",
                                "precision": "fp32"}  # what the numbers were measured with, printed too
    assert "curve points: every k up to 64 units, else 11 points + the ERASER bins; precision: fp32" in printed
    text = page.read_text()
    assert "<html" in text and "http://" not in text and "https://" not in text


def test_precision_reaches_the_curves(tiny_checkpoints, monkeypatch, capsys):
    """--precision bf16 is what the faithfulness curves and integrated gradients are asked for;
    fp32 by default."""
    import attnlab.apps.explain as app

    asked = []
    real = app.evaluate
    monkeypatch.setattr(app, "evaluate", lambda *a, **k: asked.append(
        (a[3], a[1]["integrated_gradients"].keywords["precision"])) or real(*a, **k))
    for flags in ([], ["--precision", "bf16"]):
        assert main(["explain", "--ckpt", str(tiny_checkpoints["gpt2"]), "def f(x):", "--methods", "saliency",
                     "integrated_gradients", "random", "--no-heads", *flags]) == 0
    assert asked == [("fp32", "fp32"), ("bf16", "bf16")]
    with pytest.raises(Exception, match="--precision: expected one of fp32, bf16, got 'fp16'"):
        app.explain(str(tiny_checkpoints["gpt2"]), "def f(x):", precision="fp16")


@pytest.mark.parametrize(("args", "message"), [
    (["--json", "x.txt"], "--json x.txt: expected a file name ending in .json"),
    (["--out", "x.png"], "--out x.png: expected a file name ending in .html"),
    (["--curve-points", "1"], "--curve-points: expected 2 or more, got 1"),
])
def test_a_mistake_is_one_line(tiny_checkpoints, args, message, capsys):
    assert main(["explain", "--ckpt", str(tiny_checkpoints["gpt2"]), *args]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"attnlab: error: {message}" and "Traceback" not in err


def test_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["explain", "--ckpt", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "checkpoint folder not found" in err and len(err.strip().splitlines()) == 1
