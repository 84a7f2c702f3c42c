"""The attention explorer against bertviz, in headless Chromium (Debian's /usr/bin/chromium).

    python -m benchmarks.explorer [--quick] [--tokens 1024] [--bertviz-assets DIR] [--screenshot PNG]

attnlab: a GPT-2-shaped model from a random config (12 layers x 12 heads, d 768) on N random
tokens, ``write_page``, then the page from file:// with every other request blocked:
page ready, a layer switch (not decoded yet / prefetched), a head switch, a view switch and
a hover, each until the next frame is drawn (requestAnimationFrame + a task), medians; "load" is the 1-minute load average when measured.
A second row per size uses random logits (std 3): near-incompressible attention, the
worst case for the file size.

bertviz (``pip install bertviz``): ``head_view(attention, tokens, html_action="return")``
on the same attention. Its page loads require.js, d3 and jQuery from a CDN, so offline it
draws nothing (the blocked requests are counted); with ``--bertviz-assets DIR`` holding
``require.js``, ``d3.min.js`` and ``jquery.min.js`` (``npm pack requirejs@2.3.6 d3@5.7.0
jquery@2.2.4``) the benchmark answers those requests from DIR so its speed can be measured.
Results go to docs/explorer.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from attnlab.attention.maps import Attentions, Explained
from benchmarks.common import machine_line, print_table

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FRAME = "new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)))"
TIMEOUT_MS = 180_000


def gpt2_attention(tokens: int, seed: int = 0) -> Explained:
    """GPT-2 small's shape from a random config, on ``tokens`` random token ids."""
    from attnlab.models import GPT
    from attnlab.models.gpt import GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig(dropout=0.0, attention_dropout=0.0)).eval()
    ids = torch.randint(0, 50257, (1, tokens))
    with torch.no_grad():
        attn = model(ids, need_weights=True).attentions
    if not isinstance(attn, Attentions):  # a list from a model not yet converted
        attn = Attentions().add_layers("layers.{i}.causal", attn, kind="causal", axes=("tokens", "tokens"))
    return Explained("gpt", attn, {"tokens": [[f"t{int(t)}" for t in ids[0]]]})


def random_attention(tokens: int, layers: int = 12, heads: int = 12, seed: int = 0) -> Explained:
    """Causal softmax of random logits (std 3): the worst case for compression."""
    g = torch.Generator().manual_seed(seed)
    allowed = torch.ones(tokens, tokens, dtype=torch.bool).tril()
    attn = Attentions()
    for i in range(layers):
        x = (torch.randn(1, heads, tokens, tokens, generator=g) * 3).masked_fill(~allowed, float("-inf"))
        attn.add(f"layers.{i}.causal", x.softmax(-1), kind="causal", axes=("tokens", "tokens"))
    return Explained("gpt", attn, {"tokens": [[f"t{i}" for i in range(tokens)]]})


def _blocking_page(browser, blocked: list[str], assets: dict[str, Path] | None = None):
    page = browser.new_page(viewport={"width": 1280, "height": 800})

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "data:", "blob:")):
            return r.continue_()
        name = url.rsplit("/", 1)[-1]
        if assets and name in assets:
            return r.fulfill(path=str(assets[name]), content_type="application/javascript")
        blocked.append(url)
        return r.abort()

    page.route("**/*", route)
    return page


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def measure_attnlab(browser, path: Path, layers: int) -> dict[str, object]:
    blocked: list[str] = []
    page = _blocking_page(browser, blocked)
    start = time.perf_counter()
    page.goto(path.resolve().as_uri() + "#v=matrix")
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=TIMEOUT_MS)
    ready_wall = (time.perf_counter() - start) * 1000
    ready_page = page.evaluate("attnlab.readyMs")
    switch = f"async (s) => {{ await {FRAME}; await new Promise((r) => setTimeout(r, 150)); const t = performance.now(); await attnlab.setState(s); await {FRAME}; return performance.now() - t; }}"
    cold = [page.evaluate(switch, {"m": m}) for m in (layers - 1, layers // 2, 3 % layers)]  # never shown, not next to the last
    page.evaluate(switch, {"m": 0})
    page.wait_for_timeout(400)  # the idle prefetch of the neighbours
    warm = [page.evaluate(switch, {"m": m}) for m in (1, 0, 1)]
    heads = [page.evaluate(switch, {"h": [h]}) for h in (1, 2, 3, 4)]  # idle prefetch also decodes the other heads
    views = [page.evaluate(switch, {"v": v}) for v in ("head", "model", "stats", "matrix")]
    page.evaluate(switch, {"v": "matrix", "m": 0, "h": [0]})
    hover = page.evaluate(f"""async () => {{
        const g = attnlab.geometry(), p = g.panels[0], out = [];
        for (let k = 0; k < 60; k++) {{
            const x = p.x0 + (k * 37 % 100) / 100 * p.w, y = p.y0 + (k * 53 % 100) / 100 * p.h;
            await {FRAME};
            const t = performance.now(); attnlab.hoverAt(x, y); await {FRAME}; out.push(performance.now() - t);
        }}
        const handler = [];
        for (let k = 0; k < 200; k++) {{ const t = performance.now(); attnlab.hoverAt(p.x0 + k, p.y0 + k); handler.push(performance.now() - t); }}
        out.sort((a, b) => a - b); handler.sort((a, b) => a - b);
        return [out[out.length >> 1], handler[handler.length >> 1], handler[handler.length - 1]];
    }}""")
    page.close()
    return {"ready_wall": round(ready_wall), "ready_page": round(ready_page), "cold": _median(cold),
            "cold_max": round(max(cold), 1), "warm": _median(warm), "head": _median(heads), "view": _median(views),
            "view_max": round(max(views), 1), "hover_frame": round(hover[0], 1), "hover": round(hover[1], 2),
            "hover_max": round(hover[2], 2), "blocked": len(blocked)}


def bertviz_page(ex: Explained, out: Path) -> tuple[float, float] | str:
    """Write bertviz's head view of ``ex``; (seconds, MB) or why it could not."""
    try:
        from bertviz import head_view
    except ImportError as err:
        return f"bertviz not importable ({err.name}): pip install bertviz"
    maps = [v for v in ex.attentions.values()]
    start = time.perf_counter()
    html = head_view(maps, ex.labels["tokens"][0], html_action="return").data
    out.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{html}</body></html>", encoding="utf-8")
    return time.perf_counter() - start, out.stat().st_size / 1e6


def measure_bertviz(browser, path: Path, assets: dict[str, Path] | None) -> dict[str, object]:
    blocked: list[str] = []
    page = _blocking_page(browser, blocked, assets)
    start = time.perf_counter()
    page.goto(path.resolve().as_uri(), timeout=TIMEOUT_MS)
    if not assets:
        page.wait_for_timeout(2000)
        lines = page.evaluate("document.querySelectorAll('line').length")
        page.close()
        return {"blocked": len(blocked), "lines": lines}
    try:
        page.wait_for_function("document.querySelectorAll('#attention line').length > 0", timeout=TIMEOUT_MS, polling=50)
    except Exception:
        page.close()
        return {"blocked": len(blocked), "ready_wall": f"> {TIMEOUT_MS // 1000} s"}
    ready_wall = (time.perf_counter() - start) * 1000
    switch = f"""async (v) => {{ await {FRAME}; const sel = document.querySelector('#layer'); const t = performance.now();
        sel.value = String(v); sel.dispatchEvent(new Event('change', {{ bubbles: true }})); await {FRAME}; return performance.now() - t; }}"""
    layer = [page.evaluate(switch, v) for v in (1, 2, 0)]
    hover = page.evaluate(f"""async () => {{
        const texts = [...document.querySelectorAll('#left text')], out = [];
        for (let k = 0; k < Math.min(10, texts.length); k++) {{
            await {FRAME};
            const t = performance.now(); texts[k].dispatchEvent(new MouseEvent('mouseover', {{ bubbles: true }})); await {FRAME};
            out.push(performance.now() - t);
            texts[k].parentNode.parentNode.dispatchEvent(new MouseEvent('mouseleave', {{ bubbles: false }}));
        }}
        out.sort((a, b) => a - b); return out[out.length >> 1];
    }}""")
    lines = page.evaluate("document.querySelectorAll('#attention line').length")
    page.close()
    return {"blocked": len(blocked), "ready_wall": round(ready_wall), "layer": _median(layer), "hover": round(hover, 1),
            "lines": lines}


def _assets(folder: str | None) -> dict[str, Path] | None:
    if not folder:
        return None
    found = {}
    for want, served in (("require.js", "require.min.js"), ("d3.min.js", "d3.min.js"), ("jquery.min.js", "jquery.min.js")):
        hits = sorted(Path(folder).rglob(want))
        if not hits:
            raise SystemExit(f"--bertviz-assets {folder}: no {want} inside")
        found[served] = hits[0]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="128 and 1024 tokens; bertviz at 64 and 128")
    parser.add_argument("--tokens", type=int, nargs="*", help="attnlab sizes (default 128 256 512 1024)")
    parser.add_argument("--bertviz-tokens", type=int, nargs="*", help="bertviz sizes (default 64 128 256)")
    parser.add_argument("--bertviz-assets", help="folder with require.js, d3.min.js, jquery.min.js (see the docstring)")
    parser.add_argument("--screenshot", help="write a screenshot of the largest page's matrix view here")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from attnlab.viz.explorer import write_page

    if not Path(CHROMIUM).exists():
        print(f"needs Chromium at {CHROMIUM}: apt-get install -y chromium", file=sys.stderr)
        return 1
    sizes = args.tokens or ([128, 1024] if args.quick else [128, 256, 512, 1024])
    bv_sizes = args.bertviz_tokens if args.bertviz_tokens is not None else ([64, 128] if args.quick else [64, 128, 256])
    assets = _assets(args.bertviz_assets)
    print(machine_line())
    rows, bv_rows = [], []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for n in sorted(set(sizes) | set(bv_sizes)):
            for label, make in (("GPT-2 random config", gpt2_attention), ("random logits, std 3", random_attention)):
                if n not in sizes and label != "GPT-2 random config":
                    continue
                ex = make(n)
                if n in sizes:
                    out = Path(tmp) / f"attnlab-{n}-{label[:3]}.html"
                    start = time.perf_counter()
                    write_page([ex], out, title=f"{n} tokens")
                    write_s = time.perf_counter() - start
                    m = measure_attnlab(browser, out, len(ex.attentions))
                    rows.append([n, label, f"{out.stat().st_size / 1e6:.1f}", f"{write_s:.1f}", f"{os.getloadavg()[0]:.0f}",
                                 m["ready_wall"], m["ready_page"],
                                 f"{m['cold']} (max {m['cold_max']})", m["warm"], m["head"], f"{m['view']} (max {m['view_max']})",
                                 f"{m['hover']} / {m['hover_max']}", m["hover_frame"], m["blocked"]])
                    print(" | ".join(map(str, rows[-1])), flush=True)
                    if args.screenshot and n == max(sizes) and label.startswith("GPT"):
                        page = browser.new_page(viewport={"width": 1280, "height": 800})
                        page.goto(out.resolve().as_uri() + "#v=model")
                        page.wait_for_function("document.body.dataset.ready === '1'")
                        page.screenshot(path=args.screenshot)
                        page.close()
                if n in bv_sizes and label.startswith("GPT"):
                    out = Path(tmp) / f"bertviz-{n}.html"
                    made = bertviz_page(ex, out)
                    if isinstance(made, str):
                        bv_rows.append([n, made, "", "", "", "", "", "", ""])
                    else:
                        offline = measure_bertviz(browser, out, None)
                        online = measure_bertviz(browser, out, assets) if assets else {}
                        bv_rows.append([n, f"{made[1]:.1f}", f"{made[0]:.1f}", f"{os.getloadavg()[0]:.0f}",
                                        f"{offline['blocked']} blocked, {offline['lines']} lines drawn",
                                        online.get("ready_wall", "-"), online.get("layer", "-"), online.get("hover", "-"),
                                        online.get("lines", "-")])
                    print(" | ".join(map(str, bv_rows[-1])), flush=True)
                del ex
        browser.close()
    print_table("attnlab explorer, headless Chromium (ms unless noted; medians)",
                ["tokens", "attention", "file MB", "write s", "load", "ready (wall)", "ready (in page)", "layer switch, cold",
                 "layer, prefetched", "head switch", "view switch", "hover handler median / max", "hover to frame",
                 "requests"], rows)
    print_table("bertviz head_view(html_action='return'), same attention (ms unless noted)",
                ["tokens", "file MB", "write s", "load", "offline (file://, no network)", "ready with CDN assets served",
                 "layer switch", "hover to frame", "SVG lines"], bv_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
