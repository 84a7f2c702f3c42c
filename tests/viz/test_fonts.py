"""Labels in scripts the default font lacks (Chinese) are drawn in an installed font that
has them; with none installed, one line says what to install and the PNG is still written."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import pytest
import torch

from attnlab.attention.maps import Attentions, Explained
from attnlab.viz import fonts
from attnlab.viz.figures import draw_explained

CHINESE = ["打开", "文件", "</s>"]
ENGLISH = ["Open", "file", "café", "%s"]


def translation(source: list[str], target: list[str]) -> Explained:
    """A translator's cross-attention over ``source``, predicting ``target``."""
    weights = torch.softmax(torch.randn(1, 2, len(target), len(source)), dim=-1)  # (B, H, Lq, Lk)
    maps = Attentions()
    maps.add("decoder.0.cross", weights, kind="cross", axes=("target", "source"))
    return Explained("transformer", maps, {"source": [source], "target": [target]},
                     {"predictions": ["".join(target)]})


def glyph_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


@pytest.fixture
def fresh_lookup(monkeypatch):
    """No font chosen and no notice printed yet in this process."""
    fonts.font_covering.cache_clear()
    monkeypatch.setattr(fonts, "_noticed", [])
    yield
    fonts.font_covering.cache_clear()


def cjk_font() -> str:
    family, lacking = fonts.font_covering("打开文件")
    if lacking:
        pytest.skip(f"no installed font has 打开文件 (make test's set-up installs fonts-wqy-microhei; or {fonts.INSTALL})")
    return family


def test_chinese_labels_are_drawn_in_a_font_that_has_them(tmp_path: Path, capsys, fresh_lookup):
    family = cjk_font()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = draw_explained(translation(ENGLISH, CHINESE), tmp_path / "zh.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert glyph_warnings(caught) == []
    assert capsys.readouterr().err == ""
    before = list(matplotlib.rcParams["font.family"])
    with fonts.fonts_for(CHINESE):  # the CJK font comes after the default: Latin keeps it
        assert matplotlib.rcParams["font.family"] == [*before, family]
    assert matplotlib.rcParams["font.family"] == before


def test_a_font_installed_after_matplotlibs_cache_is_found(monkeypatch, fresh_lookup):
    family = cjk_font()
    listed = fonts.font_manager.fontManager.ttflist
    files = {e.fname for e in listed if e.name == family}
    monkeypatch.setattr(fonts.font_manager.fontManager, "ttflist", [e for e in listed if e.fname not in files])
    fonts.font_covering.cache_clear()
    assert fonts.font_covering("打开文件") == (family, "")
    assert any(e.name == family for e in fonts.font_manager.fontManager.ttflist)


def test_without_a_font_one_line_says_what_to_install_and_the_png_is_written(tmp_path: Path, capsys, monkeypatch,
                                                                             fresh_lookup):
    monkeypatch.setattr(fonts, "_installed_fonts", lambda: iter(()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = draw_explained(translation(ENGLISH, CHINESE), tmp_path / "a.png")
        second = draw_explained(translation(ENGLISH, CHINESE), tmp_path / "b.png")
    assert first.read_bytes()[:4] == second.read_bytes()[:4] == b"\x89PNG"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert "打开文" in lines[0] and "fonts-noto-cjk" in lines[0] and "fonts-wqy-microhei" in lines[0]
    assert glyph_warnings(caught) == []  # said once, not once a glyph


def test_latin_labels_never_look_for_a_font(tmp_path: Path, capsys, monkeypatch):
    def no_lookup(characters: str):
        raise AssertionError(f"font lookup for {characters!r}")

    monkeypatch.setattr(fonts, "font_covering", no_lookup)
    before = list(matplotlib.rcParams["font.family"])
    path = draw_explained(translation(ENGLISH, ENGLISH), tmp_path / "en.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and capsys.readouterr().err == ""
    with fonts.fonts_for(ENGLISH):
        assert matplotlib.rcParams["font.family"] == before


@pytest.mark.parametrize("figure", ["attention_heatmap", "head_grid", "axes made before"])
def test_heatmaps_of_reports_draw_chinese_too(figure, fresh_lookup):
    """The translator's HTML report and `attnlab compare` draw with viz.heatmap: labels set
    on an axes made before (its tick labels and title were made with it) get the font too."""
    from attnlab.viz.heatmap import attention_heatmap, draw_heatmap, figure_png, head_grid, plt

    family = cjk_font()
    weights = torch.rand(2, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if figure == "attention_heatmap":
            fig = attention_heatmap(weights, ENGLISH[:3], CHINESE[:2], title="打开文件")
        elif figure == "head_grid":
            fig = head_grid(weights[None].expand(2, 2, 3), ENGLISH[:3], CHINESE[:2])
        else:
            fig, ax = plt.subplots()
            draw_heatmap(ax, weights, ENGLISH[:3], CHINESE[:2], title="打开文件")
        labels = [t for ax in fig.axes for t in ax.get_yticklabels() if t.get_text() in CHINESE]
        assert labels and all(family in t.get_fontfamily() for t in labels)
        png = figure_png(fig)
    assert png[:4] == b"\x89PNG"
    assert glyph_warnings(caught) == []
