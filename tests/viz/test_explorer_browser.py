"""The explorer page in headless Chromium: every model type offline from file://, every view
draws, hover values match the tensors, PNG/SVG export, URL state, compare.

One browser for the module; pages are written once. Chromium missing -> the tests fail with one
line saying what to install (never a skip).
"""

from __future__ import annotations

import io
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from attnlab.viz.explorer import write_page

sys.path.insert(0, str(Path(__file__).parent))
from browser import CASES, file_url, gpt_case, launch, open_page, translator_case  # noqa: E402

DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "explorer.png"


@pytest.fixture(scope="module")
def browser():
    pw, b = launch()
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """name -> (Explained, written page)."""
    root = tmp_path_factory.mktemp("explorer")
    out = {}
    for name, make in CASES.items():
        ex = make()
        out[name] = (ex, write_page([ex], root / f"{name}.html", title=f"attnlab {name}"))
    out["compare"] = (None, write_page([gpt_case(0)], root / "compare.html", title="early", compare=[gpt_case(1)],
                                       compare_title="late"))
    out["compare_translators"] = (None, write_page([translator_case(0)], root / "compare_tr.html", title="late",
                                                   compare=[translator_case(5)], compare_title="early"))
    return out


@pytest.fixture(scope="module")
def opened(browser, pages):
    """name -> an open page (opened once, shared by the tests of this module)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = open_page(browser, file_url(pages[name][1]))
        return cache[name]

    yield get
    for o in cache.values():
        o.page.close()


def _tip(o) -> str:
    return o.page.inner_text("#tip")


def _move(o, x: float, y: float) -> str:
    box = o.page.locator("#view").bounding_box()
    o.page.mouse.move(box["x"] + x, box["y"] + y)
    return _tip(o)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_view_draws_offline_and_changes_with_layer_and_head(opened, name):
    o = opened(name)
    views = o.eval("[...document.querySelectorAll('#views button')].map(b => b.dataset.view)")
    assert {"model", "matrix", "stats"} <= set(views)
    kinds = o.eval("attnlab.meta.sets[0].examples[0].maps.map(d => d.kind)")
    heads = o.eval("attnlab.meta.sets[0].examples[0].maps[0].heads")
    for view in views:
        shown = [k for k, kind in enumerate(kinds) if view != "align" or kind == "cross"]  # the maps it can show
        o.set({"v": view, "m": shown[0], "h": [0]})
        first = o.pixels()
        assert o.ink() > 2000, view  # something was drawn
        if view in ("model", "stats"):
            continue
        if len(shown) > 1:
            o.set({"m": shown[-1]})
            assert o.pixels() != first, f"{view}: layer change left the picture unchanged"
        if heads > 1:
            o.set({"m": shown[0], "h": [heads - 1]})
            assert o.pixels() != first, f"{view}: head change left the picture unchanged"
    assert o.blocked == [] and o.errors == []


def test_matrix_hover_shows_the_tensor_value(opened, pages):
    o, ex = opened("gpt"), pages["gpt"][0]
    o.set({"v": "matrix", "e": 1, "m": 2, "h": [3], "zoom": 1, "px": 0, "py": 0})
    g = o.eval("attnlab.geometry()")
    attn = ex.attentions["layers.2.causal"][1, 3]  # (L, L)
    for i, j in [(0, 0), (5, 2), (11, 11), (11, 0)]:
        tip = _move(o, g["panels"][0]["x0"] + (j + 0.5) * g["cell"], g["panels"][0]["y0"] + (i + 0.5) * g["cell"])
        assert f"query {i} " in tip and f"key   {j} " in tip
        shown = float(re.search(r"weight: ([-\d.e]+)", tip).group(1))
        assert shown == pytest.approx(attn[i, j].item(), abs=attn[i].max().item() / 510 + 1e-4)


def test_matrix_zoom_and_scroll_keep_hover_values_right(opened, pages):
    o, ex = opened("gpt"), pages["gpt"][0]
    o.set({"v": "matrix", "e": 0, "m": 0, "h": [1], "zoom": 1, "px": 0, "py": 0})
    for _ in range(3):
        o.page.click("#zoom-in")
    o.wait("() => attnlab.state.zoom > 3")
    g = o.eval("attnlab.geometry()")
    _move(o, g["panels"][0]["x0"] + 5, g["panels"][0]["y0"] + 5)
    o.page.mouse.wheel(0, 3 * g["cell"])  # three rows down
    o.wait("() => attnlab.state.py >= 2.9")
    g = o.eval("attnlab.geometry()")
    i, j = 3 + 2, 1  # the third visible row after scrolling three rows
    tip = _move(o, g["panels"][0]["x0"] + (j - g["px"] + 0.5) * g["cell"], g["panels"][0]["y0"] + (i - g["py"] + 0.5) * g["cell"])
    row = ex.attentions["layers.0.causal"][0, 1, i]
    assert f"query {i} " in tip and f"key   {j} " in tip
    assert float(re.search(r"weight: ([-\d.e]+)", tip).group(1)) == pytest.approx(row[j].item(), abs=row.max().item() / 510 + 1e-4)
    o.page.click("#zoom-fit")
    o.wait("() => attnlab.state.zoom === 1 && attnlab.state.py === 0")


def test_head_view_hover_lists_the_query_row(opened, pages):
    o, ex = opened("bert"), pages["bert"][0]
    o.set({"v": "head", "m": 1, "h": [1], "scroll": 0})
    g = o.eval("attnlab.geometry()")
    tip = _move(o, g["xl"] + g["lw"] / 2, g["top"] + 3.5 * g["row"])
    row = ex.attentions["layers.1.self"][0, 1, 3]
    top = float(tip.splitlines()[1].split()[0])
    assert tip.startswith("query 3 all") and top == pytest.approx(row.max().item(), abs=row.max().item() / 500 + 1e-4)


def test_graph_hover_lists_neighbour_weights(opened, pages):
    o, ex = opened("gat"), pages["gat"][0]
    o.set({"v": "graph", "m": 1, "h": [2], "zoom": 1, "px": 0, "py": 0})
    node = 33
    x, y = o.eval("attnlab.geometry()")["nodes"][node]
    tip = _move(o, x, y)
    edge_index, alpha = ex.attentions["layers.1.graph"]
    incoming = alpha[edge_index[1] == node, 2]
    assert tip.startswith(f"node {node} member {node}") and f"{len(incoming)} neighbours" in tip
    assert float(tip.splitlines()[2].split()[0]) == pytest.approx(incoming.max().item(), abs=1e-4)


def test_vit_overlay_hover_and_patch_click(opened, pages):
    o, ex = opened("vit"), pages["vit"][0]
    o.set({"v": "image", "m": 1, "h": [0], "q": 0})
    g = o.eval("attnlab.geometry()")
    cell = g["side"] / g["gc"]
    tip = _move(o, g["x"][0] + 2.5 * cell, g["y0"] + 1.5 * cell)  # row 1, col 2 -> patch 6 (token 7)
    assert tip.startswith("patch 6 (row 1, col 2)")
    expected = ex.attentions["layers.1.self"][0, 0, 0, 7].item()
    assert float(tip.splitlines()[1].split()[1]) == pytest.approx(expected, abs=0.01)
    o.page.mouse.down()
    o.page.mouse.up()
    o.wait("attnlab.state.q === 7")


def test_align_view_steps_and_shows_aer(opened):
    o = opened("transformer")
    o.set({"v": "align", "q": 0})
    assert o.eval("attnlab.meta.sets[0].examples[0].maps[attnlab.state.m].kind") == "cross"
    before = o.pixels()
    o.page.fill("#step", "3")
    o.wait("attnlab.state.q === 3")
    assert o.pixels() != before and "q=3" in o.eval("location.hash")
    assert "AER per head" in o.eval("attnlab.exportSVG()")


def test_stats_sort_by_clicking_a_header(opened):
    o = opened("gpt")
    o.set({"v": "stats", "sort": "", "dir": -1})
    before = o.pixels()
    box = o.page.locator("#view").bounding_box()
    o.page.mouse.click(box["x"] + 215, box["y"] + 15)  # the "entropy" header
    o.wait("attnlab.state.sort === 'entropy'")
    assert o.pixels() != before


def test_model_view_click_opens_the_matrix(opened):
    o = opened("gpt")
    o.set({"v": "model", "m": 0, "h": [0]})
    t = o.eval("attnlab.geometry()")["t"]
    box = o.page.locator("#view").bounding_box()
    o.page.mouse.click(box["x"] + 150 + 2 * (t + 6) + t / 2, box["y"] + 50 + 1 * (t + 6) + t / 2)
    o.wait("attnlab.state.v === 'matrix'")
    assert o.eval("[attnlab.state.m, attnlab.state.h]") == [1, [2]]


def test_png_and_svg_export_download_valid_files(opened, tmp_path):
    o = opened("transformer")
    o.set({"v": "matrix", "m": 3, "h": [0, 1]})
    with o.page.expect_download() as png:
        o.page.click("#png")
    data = Path(png.value.path()).read_bytes()
    image = Image.open(io.BytesIO(data))
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and image.size[0] > 500 and png.value.suggested_filename.endswith(".png")
    with o.page.expect_download() as svg:
        o.page.click("#svg")
    root = ET.fromstring(Path(svg.value.path()).read_bytes())
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg" and root.find(f"{ns}image") is not None
    assert any(t.text == "dort" for t in root.iter(f"{ns}text"))  # labels stay text


def test_url_state_round_trips(browser, opened, pages):
    o = opened("gpt")
    o.set({"v": "matrix", "e": 1, "m": 2, "h": [1, 3]})
    url = o.eval("location.href")
    assert re.search(r"#v=matrix&s=0&e=1&m=2&h=1,3", url)
    again = open_page(browser, url)
    try:
        assert again.eval("[attnlab.state.v, attnlab.state.e, attnlab.state.m, attnlab.state.h]") == ["matrix", 1, 2, [1, 3]]
        assert again.pixels() == o.pixels()
    finally:
        again.page.close()


def test_compare_shows_both_checkpoints_and_their_difference(opened):
    o = opened("compare")
    o.set({"v": "matrix", "c": 1, "m": 1, "h": [0, 1]})
    g = o.eval("attnlab.geometry()")
    assert len(g["panels"]) == 3
    p = g["panels"][0]
    tip = _move(o, p["x0"] + 4.5 * g["cell"], p["y0"] + 7.5 * g["cell"])
    values = {k: float(v) for k, v in re.findall(r"^(early|late|A−B): ([-\d.]+)$", tip, re.M)}
    a = gpt_case(0).attentions[1][0, :2, 7, 4].mean().item()
    b = gpt_case(1).attentions[1][0, :2, 7, 4].mean().item()
    assert values["early"] == pytest.approx(a, abs=2e-3) and values["late"] == pytest.approx(b, abs=2e-3)
    assert values["A−B"] == pytest.approx(a - b, abs=3e-3)
    o.set({"v": "model"})
    assert "early − late" in o.eval("attnlab.exportSVG()")
    o.set({"v": "head", "c": 0})
    alone = o.pixels()
    o.set({"c": 1})
    svg = o.eval("attnlab.exportSVG()")
    assert o.pixels() != alone and "early · layers.1.causal" in svg and "late · layers.1.causal" in svg
    assert o.errors == [] and o.blocked == []


def test_compare_translators_step_by_step(opened):
    o = opened("compare_translators")
    o.set({"v": "align", "c": 0, "q": 2})
    alone = o.pixels()
    o.set({"c": 1})
    svg = o.eval("attnlab.exportSVG()")
    assert o.pixels() != alone and "AER per head, late" in svg and "AER per head, early" in svg
    assert o.errors == [] and o.blocked == []


def test_screenshot_for_the_docs(opened):
    """docs/images/explorer.png: the translator's alignment view, taken by this browser."""
    o = opened("transformer")
    o.set({"v": "align", "m": 5, "h": [0, 1, 2, 3], "q": 4})
    o.page.mouse.move(0, 0)
    o.eval("document.activeElement && document.activeElement.blur()")
    shot = o.page.screenshot()
    new = Image.open(io.BytesIO(shot)).convert("RGB")
    assert new.size == (1280, 800) and len(new.getcolors(1 << 24)) > 50  # a real picture, not a blank page
    if DOCS_IMAGE.exists():
        old = Image.open(DOCS_IMAGE).convert("RGB")
        if old.size == new.size and max(hi for _, hi in ImageChops.difference(old, new).getextrema()) <= 16:
            return  # unchanged but for anti-aliasing: leave the committed file alone
    DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
    DOCS_IMAGE.write_bytes(shot)


def test_no_console_errors_anywhere(opened):
    for name in CASES:
        o = opened(name)
        assert o.errors == [] and o.blocked == [], name


def test_hostile_labels_titles_and_paths_stay_data(browser, tmp_path):
    """``<!--<script`` in a label or title once put the data script into the parser's double-escaped
    state (a blank page, no error); ``</script>`` could close it. Both are shown as text now."""
    from attnlab.attention.maps import Explained

    ex = gpt_case()
    hostile = ["<!--<script", "</script><script>window.owned=1</script>", "a & b"]
    labels = [hostile + row[len(hostile):] for row in ex.labels["tokens"]]
    ex = Explained(ex.model_type, ex.attentions, {"tokens": labels})
    path = write_page([ex], tmp_path / "hostile.html", title="runs/<!--<script", compare=[ex],
                      compare_title="runs/</script><!--<script")
    o = open_page(browser, file_url(path))
    try:
        assert o.eval("attnlab.meta.sets[0].examples[0].labels.tokens.slice(0, 3)") == hostile
        assert o.eval("[attnlab.meta.title, attnlab.meta.sets[1].title, window.owned === undefined]") == \
            ["runs/<!--<script", "runs/</script><!--<script", True]
        o.set({"v": "matrix"})
        assert o.ink() > 1000 and o.errors == [] and o.blocked == []
    finally:
        o.page.close()
