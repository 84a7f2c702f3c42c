"""Headless Chromium for the explorer's browser tests (imported by tests/viz/test_explorer_*.py).

Debian's ``chromium`` (``/usr/bin/chromium``) driven by Playwright from PyPI; Playwright's own
browser download is never used. A missing browser fails the tests with one line saying what
to install (``make test`` installs both on a Debian-like machine).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("ATTNLAB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}


def launch():
    """(playwright, browser), or a test failure naming what to install."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("browser tests need Playwright: pip install playwright (or make test)", pytrace=False)
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(f"browser tests need Chromium at {CHROMIUM}: apt-get install -y chromium (or make test)", pytrace=False)
    pw = sync_playwright().start()
    try:
        return pw, pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    except Exception as err:
        pw.stop()
        pytest.fail(f"Chromium at {CHROMIUM} did not start: {str(err).splitlines()[0]}", pytrace=False)


@dataclass
class Opened:
    """A loaded explorer page and what it did: console errors and blocked requests."""

    page: object
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def eval(self, js: str, arg=None):
        return self.page.evaluate(js, arg)

    def pixels(self) -> str:
        """A checksum of the main canvas's pixels (changes when what it shows changes)."""
        return self.page.evaluate("attnlab.fingerprint().hash")

    def ink(self) -> int:
        """How many pixels of the main canvas are not white."""
        return self.page.evaluate("attnlab.fingerprint().ink")

    def set(self, state: dict) -> None:
        self.page.evaluate("(s) => attnlab.setState(s)", state)

    def wait(self, js: str, timeout: float = 20.0) -> None:
        wait_until(self.page, js, timeout)


def wait_until(page, js: str, timeout: float = 20.0) -> None:
    """Poll ``js`` (an expression or an arrow function) with ``page.evaluate`` until it is true. Playwright's own
    ``wait_for_function`` may compile its predicate inside the page, which the page's
    Content-Security-Policy (no 'unsafe-eval') refuses — now and then, not always."""
    deadline = time.monotonic() + timeout
    expression = js if js.lstrip().startswith("()") else f"() => ({js})"
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {js}")
        page.wait_for_timeout(50)


def open_page(browser, url: str, *, allow_prefix: str = "file:") -> Opened:
    """Open ``url`` with every request not starting with ``allow_prefix`` blocked and counted."""
    page = browser.new_page(viewport=VIEWPORT)
    opened = Opened(page)
    page.on("console", lambda m: opened.errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: opened.errors.append(f"page error: {e}"))

    def route(r):
        if r.request.url.startswith(allow_prefix) or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            opened.blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url)
    try:
        wait_until(page, "document.body.dataset.ready === '1'")
    except Exception as err:
        raise AssertionError(f"{url}: the page never became ready ({str(err).splitlines()[0]}); "
                             f"errors {opened.errors}, blocked {opened.blocked}") from None
    return opened


def file_url(path: Path, hash_: str = "") -> str:
    return Path(path).resolve().as_uri() + (f"#{hash_}" if hash_ else "")


# ---------- the explorer tests' cases: one Explained per model type ----------

def _softmax(shape, *, causal=False, scale=2.0, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g) * scale
    if causal:
        lq, lk = shape[-2:]
        x = x.masked_fill(~torch.ones(lq, lk, dtype=torch.bool).tril(lk - lq), float("-inf"))
    return x.softmax(-1)


def _as_attentions(value, template: str, kind: str, axes):
    """A model's ``.attentions`` as :class:`Attentions` (lists from older models are wrapped)."""
    from attnlab.attention.maps import Attentions

    if isinstance(value, Attentions):
        return value
    out = Attentions()
    for i, v in enumerate(value):
        out.add(template.format(i=i), v, kind=kind, axes=axes)
    return out


def gpt_case(seed: int = 0):
    """A real tiny GPT (random weights) on two 12-token inputs."""
    import torch

    from attnlab.attention.maps import Explained
    from attnlab.models import GPT
    from attnlab.models.gpt import GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=40, context_length=32, num_layers=3, num_heads=4, d_model=32, dropout=0.0,
                          attention_dropout=0.0)).eval()
    ids = torch.randint(0, 40, (2, 12), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = model(ids, need_weights=True)
    attn = _as_attentions(out.attentions, "layers.{i}.causal", "causal", ("tokens", "tokens"))
    words = "the cat sat on the mat , and a dog ran off".split()
    labels = [[f"{words[int(t) % len(words)]}" for t in row] for row in ids]
    return Explained("gpt", attn, {"tokens": labels})


def bert_case():
    import torch

    from attnlab.attention.maps import Explained
    from attnlab.models import BERT
    from attnlab.models.bert import PRESETS

    torch.manual_seed(0)
    model = BERT(PRESETS["tiny"]).eval()
    toks = ["[CLS]", "attention", "is", "all", "you", "need", ".", "[SEP]"]
    ids = torch.randint(5, 2000, (1, len(toks)), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(ids, need_weights=True)
    attn = _as_attentions(out.attentions, "layers.{i}.self", "self", ("tokens", "tokens"))
    return Explained("bert", attn, {"tokens": [toks]}, {"special": {"[CLS]", "[SEP]"}})


SOURCE = "le chat noir dort sur le tapis .".split()
TARGET = "the black cat sleeps on the mat .".split()
GOLD = {(0, 0), (1, 2), (2, 1), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7)}


def translator_case(seed: int = 0):
    """Encoder, decoder and cross attention; two cross heads follow the gold alignment."""
    import torch

    from attnlab.attention.maps import Attentions, Explained

    s, t, a = len(SOURCE), len(TARGET), Attentions()
    for i in range(2):
        a.add(f"encoder.{i}.self", _softmax((1, 4, s, s), seed=seed + i), kind="self", axes=("source", "source"))
    gold = torch.zeros(t, s)
    for ti, si in GOLD:
        gold[ti, si] = 1
    bonus = torch.tensor([4.0, 2.0, 0.0, 0.0])[:, None, None] * gold  # heads 0, 1 align; 2, 3 do not
    for i in range(2):
        a.add(f"decoder.{i}.self", _softmax((1, 4, t, t), causal=True, seed=seed + 10 + i), kind="causal", axes=("target", "target"))
        cross = (torch.randn(1, 4, t, s, generator=torch.Generator().manual_seed(seed + 20 + i)) + bonus * (i + 1) / 2).softmax(-1)
        a.add(f"decoder.{i}.cross", cross, kind="cross", axes=("target", "source"))
    return Explained("transformer", a, {"source": [SOURCE], "target": [TARGET]},
                     {"gold": [GOLD], "predictions": [" ".join(TARGET)]})


def seq2seq_case():
    from attnlab.attention.maps import Attentions, Explained

    a = Attentions()
    a.add("decoder.0.cross", _softmax((1, 1, len(TARGET), len(SOURCE)), scale=4.0, seed=3), kind="cross",
          axes=("target", "source"))
    return Explained("seq2seq", a, {"source": [SOURCE], "target": [TARGET]}, {"gold": [GOLD]})


def vit_case(grid: int = 4):
    import torch

    from attnlab.attention.maps import Attentions, Explained

    n = 1 + grid * grid
    a = Attentions()
    for i in range(2):
        a.add(f"layers.{i}.self", _softmax((1, 3, n, n), seed=30 + i), kind="self", axes=("patches", "patches"))
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    image = torch.stack([xx, yy, 1 - xx * yy])[None]  # (1, 3, 32, 32): a smooth gradient
    labels = ["[CLS]"] + [f"patch {r},{c}" for r in range(grid) for c in range(grid)]
    return Explained("vit", a, {"patches": [labels]}, {"image": image, "grid": (grid, grid)})


def _karate():
    import networkx as nx
    import torch

    graph = nx.karate_club_graph()
    edges = torch.tensor(list(graph.edges())).T
    n = graph.number_of_nodes()
    edge_index = torch.cat([edges, edges.flip(0), torch.arange(n).repeat(2, 1)], 1)  # both ways + self loops
    classes = [int(graph.nodes[i]["club"] == "Officer") for i in range(n)]
    return edge_index, n, classes


def _graph_alpha(edge_index, n, heads, seed):
    import torch

    raw = torch.rand(edge_index.shape[1], heads, generator=torch.Generator().manual_seed(seed)) ** 3
    total = torch.zeros(n, heads).index_add_(0, edge_index[1], raw)
    return raw / total[edge_index[1]]  # each node's incoming weights sum to 1


def gat_case():
    from attnlab.attention.maps import Attentions, Explained, GraphAttention

    edge_index, n, classes = _karate()
    a = Attentions()
    for i in range(2):
        a.add(f"layers.{i}.graph", GraphAttention(edge_index, _graph_alpha(edge_index, n, 4, 40 + i)), kind="graph",
              axes=("nodes", "nodes"))
    return Explained("gat", a, {"nodes": [[f"member {i}" for i in range(n)]]}, {"node_classes": [classes]})


def han_case():
    import torch

    from attnlab.attention.maps import Attentions, Explained, GraphAttention

    edge_index, n, classes = _karate()
    a = Attentions()
    for m in range(2):
        keep = edge_index[:, (edge_index[0] + m) % 2 == 0] if m else edge_index
        a.add(f"metapath.{m}.graph", GraphAttention(keep, _graph_alpha(keep, n, 2, 50 + m)), kind="metapath",
              axes=("nodes", "nodes"))
    return Explained("han", a, {"nodes": [[f"m{i}" for i in range(n)]]},
                     {"node_classes": [classes], "metapaths": ["friend", "friend-of-even"],
                      "metapath_weights": torch.tensor([0.7, 0.3])})


CASES = {"gpt": gpt_case, "bert": bert_case, "transformer": translator_case, "seq2seq": seq2seq_case,
         "vit": vit_case, "gat": gat_case, "han": han_case}
