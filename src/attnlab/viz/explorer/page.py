"""Write the explorer page: one self-contained HTML file (no network, no CDN).

The page is ``static/template.html`` with the project's own CSS and JavaScript (``static/explorer-1-data.js``
... ``explorer-5-app.js``, one closure) inlined, a
small JSON description of every example (``<script id="attnlab-meta">``) and one
``<script type="application/octet-stream">`` tag per blob, read only when its map is shown.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from attnlab.attention.maps import Explained
from attnlab.errors import AttnlabError
from attnlab.io import write_text
from attnlab.viz.explorer.pack import Blobs, choose_levels, pack_items


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _script() -> str:
    """The page's JavaScript: ``static/explorer-*.js`` in order, in one strict-mode closure."""
    folder = resources.files(__package__).joinpath("static")
    parts = sorted(p.name for p in folder.iterdir() if p.name.startswith("explorer-") and p.name.endswith(".js"))
    return "(function () {\n  'use strict';\n" + "\n".join(_static(name) for name in parts) + "})();\n"


# every character that means something to the HTML parser inside a <script> element, and the two
# line separators older JavaScript parsers end a string at, as JSON escapes (the data is unchanged)
_SCRIPT_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                                 "\u2028": "\\u2028", "\u2029": "\\u2029"})


def script_json(obj: Any) -> str:
    """``obj`` as JSON that is inert inside an HTML ``<script>`` element: the one helper for every
    JSON written into HTML. ``</script>`` cannot close the element and ``<!--`` / ``<script``
    cannot put the parser into its (double-)escaped state, because no ``<`` is left; ``json.loads``
    and ``JSON.parse`` read the same value back."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).translate(_SCRIPT_ESCAPES)


def build_meta(
    items: list[Explained], blobs: Blobs, *, title: str, compare: list[Explained] | None = None,
    compare_title: str | None = None, serve: dict[str, Any] | None = None, max_mb: float | None = None,
) -> dict[str, Any]:
    """The page's JSON: ``sets`` (the items, and the compared checkpoint's), titles, serve config.
    ``max_mb``: the attention is quantized coarser when 8 bits would pass it (None: 8 bits)."""
    levels = choose_levels(list(items) + list(compare or []), max_mb)
    sets = [{"title": title, "examples": pack_items(items, blobs, levels)}]
    if compare:
        sets.append({"title": compare_title or "compare", "examples": pack_items(compare, blobs, levels)})
    for examples in (s["examples"] for s in sets):
        for k, e in enumerate(examples):
            e["title"] = _example_title(e, k)
    meta: dict[str, Any] = {"version": 1, "title": title, "sets": sets}
    if serve:
        meta["serve"] = serve
    return meta


def _example_title(e: dict[str, Any], k: int) -> str:
    for axis in ("source", "tokens", "target"):
        if axis in e["labels"]:
            return " ".join(e["labels"][axis])[:80]
    return f"{e['model_type']} {k}"


def content_security_policy(script: str | None = None) -> str:
    """The page's policy: nothing from the network; only the page's own script runs (by its SHA-256,
    so a script element smuggled in through data would not); inline styles, data:/blob: images and
    the live server's API (``connect-src 'self'``). The page declares it in a meta tag; the live
    server also sends it as a header, with ``frame-ancestors 'none'`` (which a meta tag cannot carry)."""
    digest = base64.b64encode(hashlib.sha256((script or _script()).encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; img-src data: blob:; "
            "connect-src 'self'")


def render_html(meta: dict[str, Any], blobs: Blobs) -> str:
    """The page as one string."""
    blob_tags = "\n".join(f'<script type="application/octet-stream" id="attnlab-{k}">{v}</script>' for k, v in blobs.items.items())
    script = _script()
    parts = {"__CSS__": _static("explorer.css"), "__META__": script_json(meta), "__BLOBS__": blob_tags,
             "__JS__": script, "__TITLE__": html.escape(meta["title"]), "__CSP__": content_security_policy(script)}
    # one pass over the template: inserted text is never searched for placeholders
    return re.sub(r"__(?:TITLE|CSS|JS|META|BLOBS|CSP)__", lambda m: parts[m.group(0)], _static("template.html"))


def write_page(
    items: list[Explained], out: Path, *, title: str, compare: list[Explained] | None = None,
    compare_title: str | None = None, max_mb: float | None = 25.0,
) -> Path:
    """Write the explorer for ``items`` (and, side by side, ``compare``) to ``out``; return it.

    The attention is stored at 8 bits per weight (relative to its row's maximum) unless the file
    would pass ``max_mb``; then on the finest coarser grid that fits (None: always 8 bits).
    """
    if not isinstance(items, list) or not all(isinstance(x, Explained) for x in items):
        raise AttnlabError("write_page: items must be a list of Explained")
    if compare is not None and (not isinstance(compare, list) or not all(isinstance(x, Explained) for x in compare)):
        raise AttnlabError("write_page: compare must be a list of Explained")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise AttnlabError(f"--out {out}: the explorer is an HTML file; expected a name ending in .html")
    blobs = Blobs()
    meta = build_meta(items, blobs, title=title, compare=compare, compare_title=compare_title, max_mb=max_mb)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, render_html(meta, blobs))
    return out
