"""The explorer's attribution view in headless Chromium: ``attnlab.explore(..., explain=True)``
adds the faithfulness table (ranked as the report), the input coloured by the chosen method,
and the head-importance grid whose cells open that head's attention; a page without
attribution data shows no such view."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from attnlab.apps.explain import explore
from attnlab.apps.lm import LoadedLM
from attnlab.data.char_tokenizer import CharTokenizer
from attnlab.models.gpt import GPT, gpt_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viz"))
from browser import file_url, launch, open_page  # noqa: E402  (the explorer tests' Chromium launcher)

METHODS = ["rollout", "saliency", "random"]


@pytest.fixture(scope="module")
def browser():
    pw, b = launch()
    yield b
    b.close()
    pw.stop()


def loaded() -> LoadedLM:
    torch.manual_seed(0)
    tokenizer = CharTokenizer.train(["abcdef ghij"])
    return LoadedLM(GPT(gpt_config("tiny", vocab_size=tokenizer.vocab_size, dropout=0.0)).eval(), tokenizer)


def test_the_attribution_view(browser, tmp_path):
    page = explore(loaded(), ["abc def"], explain=True, methods=METHODS)
    opened = open_page(browser, file_url(page.save(tmp_path / "e.html")))
    attribution = opened.eval("attnlab.meta.attribution")
    rows = opened.eval("Array.from(document.querySelectorAll('#faithfulness tr td:first-child')).map(t => t.textContent)")
    assert rows == attribution["ranked"] and sorted(rows) == sorted(METHODS)
    units = "Array.from(document.querySelectorAll('#attr-units span')).map(s => s.textContent + '|' + s.style.background)"
    first = opened.eval(units)
    assert [u.split("|")[0] for u in first] == list("abc def")
    assert opened.eval("document.getElementById('attr-method').value") == attribution["ranked"][0]
    opened.page.select_option("#attr-method", attribution["ranked"][-1])
    assert opened.eval(units) != first  # another method, other colours
    heads = opened.eval("document.querySelectorAll('.attr-head').length")
    assert heads == len(attribution["heads"]) == 2 * 2  # tiny: 2 layers x 2 heads
    opened.page.locator(".attr-head").nth(3).click()
    assert opened.eval("[attnlab.state.m, attnlab.state.h]") == [1, [1]]
    assert opened.errors == [] and opened.blocked == []


def test_no_attribution_no_view(browser, tmp_path):
    page = explore(loaded(), ["abc def"])
    opened = open_page(browser, file_url(page.save(tmp_path / "e.html")))
    assert opened.eval("document.getElementById('attribution')") is None and opened.errors == []
