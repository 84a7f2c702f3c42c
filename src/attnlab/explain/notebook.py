"""A page shown inline in Jupyter / VS Code and saved as a file.

``_repr_html_`` is a sandboxed iframe (``sandbox="allow-scripts"``: no same-origin access,
no top navigation) whose ``srcdoc`` holds the whole offline page, so the notebook's own
page and styles are untouched and nothing is fetched from a network. The framed page gets
``<base href="about:srcdoc">``: a srcdoc document's relative URLs otherwise resolve against
the notebook's address, and a page that keeps its state in the URL's fragment (the
explorer) would be refused rewriting a URL that is not its own.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from attnlab.io import atomic_write


def framed(page: str) -> str:
    """``page`` with ``<base href="about:srcdoc">`` first in its head (or first of all)."""
    base = '<base href="about:srcdoc">'
    match = re.search(r"<head[^>]*>", page, flags=re.IGNORECASE)
    return page[: match.end()] + base + page[match.end():] if match else base + page


class InlinePage:
    """A self-contained HTML page: ``_repr_html_`` for notebooks, ``save(path)`` for files."""

    def __init__(self, page: str, title: str, height: int = 640):
        self.page, self.title, self.height = page, title, height

    def _repr_html_(self) -> str:
        return (f'<iframe title="{html.escape(self.title)}" sandbox="allow-scripts" '
                f'style="width:100%;height:{self.height}px;border:1px solid #ddd" '
                f'srcdoc="{html.escape(framed(self.page), quote=True)}"></iframe>')

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (atomically) and return it."""
        path = Path(path)
        atomic_write(path, lambda tmp: Path(tmp).write_text(self.page, encoding="utf-8"))
        return path
