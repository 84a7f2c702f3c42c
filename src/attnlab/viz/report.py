"""A self-contained HTML report: headings, text, tables and PNG images embedded as base64.

One file, no external assets, openable offline in any browser::

    report = Report("attnlab demo")
    report.add(Section("Results", text="...", table=[["BLEU", "97.1"]], images=[png_bytes]))
    report.write("runs/demo/report.html")            # atomic (attnlab.io)
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field

from attnlab.io import write_text

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { border-bottom: 2px solid #ddd; } h2 { margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: left; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
img { max-width: 100%; margin: 0.5em 0; display: block; }
figcaption { color: #555; font-size: 0.9em; }
"""


@dataclass
class Section:
    """A heading with optional paragraph ``text``, preformatted ``code``, a ``table``
    (first row = header) and PNG ``images`` (bytes) with optional ``captions``."""

    heading: str
    text: str = ""
    code: str = ""
    table: list[list[str]] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)

    def to_html(self) -> str:
        parts = [f"<h2>{html.escape(self.heading)}</h2>"]
        parts += [f"<p>{html.escape(p)}</p>" for p in self.text.split("\n\n") if p.strip()]
        if self.code:
            parts.append(f"<pre>{html.escape(self.code)}</pre>")
        if self.table:
            head, *rows = self.table
            cells = ["<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in head) + "</tr>"]
            cells += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("<table>" + "".join(cells) + "</table>")
        for n, png in enumerate(self.images):
            caption = self.captions[n] if n < len(self.captions) else ""
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        return "\n".join(parts)


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)

    def add(self, section: Section) -> None:
        self.sections.append(section)

    def to_html(self) -> str:
        body = "\n".join(s.to_html() for s in self.sections)
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )

    def write(self, path: str | os.PathLike) -> None:
        write_text(path, self.to_html())
