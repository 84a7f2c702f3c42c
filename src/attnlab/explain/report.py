"""The result of explaining a model: the faithfulness table, head importance, the lens, and
every prediction's attributions — as text, as the JSON of ``attnlab explain --json`` and as
one offline HTML page (tables, inputs coloured by each method, the layer × head grid).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from attnlab.explain.evaluate import MEASURES, Evaluation
from attnlab.explain.explainable import Explainable
from attnlab.explain.notebook import InlinePage
from attnlab.io import atomic_write

STYLE = """body{font:14px system-ui,sans-serif;margin:1em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}th:first-child,td:first-child{text-align:left}
.unit{display:inline-block;margin:1px;padding:1px 3px;border-radius:3px;white-space:pre}
.head{width:22px;height:22px;display:inline-block;margin:1px}h2{font-size:16px;margin-top:1.2em}"""


@dataclass
class ExplainReport:
    kind: str
    predictions: list[Explainable]
    evaluation: Evaluation
    heads: list[dict] = field(default_factory=list)
    pruning: list[dict] = field(default_factory=list)
    lens: list[dict] = field(default_factory=list)  # GPT: per input, per layer top guesses

    def to_json(self) -> dict:
        """``{"methods": {NAME: measures}, "heads": [...], "examples": [...]}``."""
        examples = []
        for n, x in enumerate(self.predictions):
            examples.append({
                "target": x.target, "units": x.labels, "replacement": x.replacement,
                **{k: v for k, v in x.extras.items() if isinstance(v, (str, int, float, list))},
                "attributions": {m: (None if a[n] is None else a[n].tolist()) for m, a in self.evaluation.attributions.items()},
                "curves": {m: c[n] for m, c in self.evaluation.curves.items()},
            })
        return {"kind": self.kind, "settings": self.evaluation.settings, "methods": self.evaluation.table,
                "ranked": self.evaluation.ranked(),
                "skipped": self.evaluation.skipped, "heads": self.heads, "pruning": self.pruning,
                "lens": self.lens, "examples": examples}

    def format(self) -> str:
        lines = [f"{self.kind}: {len(self.predictions)} predictions; removed units become "
                 f"{self.predictions[0].replacement if self.predictions else '-'}", self.evaluation.format_table()]
        if self.heads:
            top = sorted(self.heads, key=lambda r: -r["importance"])[:5]
            lines.append("most important heads (loss increase when masked): " + ", ".join(
                f"{r['layer']}#{r['head']} {r['importance']:+.4f}" for r in top))
        return "\n".join(lines)

    def write_json(self, path: str | Path) -> Path:
        text = json.dumps(self.to_json(), indent=1, allow_nan=False)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return Path(path)

    def html(self) -> str:
        e, parts = self.evaluation, [f"<h1>attnlab explain: {html.escape(self.kind)}</h1>"]
        parts.append("<h2>Faithfulness (most faithful first)</h2><table><tr><th>method</th>"
                     + "".join(f"<th>{m}</th>" for m in MEASURES) + "</tr>")
        parts += [f"<tr><td>{n}</td>" + "".join(f"<td>{e.table[n][m]:.4f}</td>" for m in MEASURES) + "</tr>"
                  for n in e.ranked()]
        parts.append("</table>")
        for n, x in enumerate(self.predictions[:20]):
            parts.append(f"<h2>{n + 1}. predicts {html.escape(x.target)!s}</h2>")
            for method, attributions in e.attributions.items():
                if attributions[n] is not None:
                    parts.append(f"<div><b>{method}</b> " + _coloured(x.labels, attributions[n].tolist()) + "</div>")
        if self.heads:
            parts.append("<h2>Head importance (loss increase when masked)</h2>" + _head_grid(self.heads))
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>attnlab explain</title>"
                f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")

    def _repr_html_(self) -> str:
        return InlinePage(self.html(), f"attnlab explain: {self.kind}")._repr_html_()

    def save(self, path: str | Path) -> Path:
        """The page (``.html``) or the JSON (``.json``)."""
        if str(path).endswith(".json"):
            return self.write_json(path)
        return InlinePage(self.html(), self.kind).save(path)


def _coloured(labels: list[str], scores: list[float]) -> str:
    top = max((abs(s) for s in scores), default=0.0) or 1.0
    spans = []
    for label, s in zip(labels, scores):
        colour = "255,80,40" if s >= 0 else "40,120,255"
        spans.append(f"<span class='unit' title='{s:.4g}' style='background:rgba({colour},{abs(s) / top:.3f})'>"
                     f"{html.escape(label)}</span>")
    return "".join(spans)


def _head_grid(rows: list[dict]) -> str:
    top = max((abs(r["importance"]) for r in rows), default=0.0) or 1.0
    layers: dict[str, list[dict]] = {}
    for r in rows:
        layers.setdefault(r["layer"], []).append(r)
    out = []
    for name, heads in layers.items():
        cells = "".join(f"<span class='head' title='{name} head {r['head']}: {r['importance']:+.4f}' "
                        f"style='background:rgba(255,80,40,{max(0.0, r['importance']) / top:.3f})'></span>" for r in heads)
        out.append(f"<div><code>{html.escape(name)}</code> {cells}</div>")
    return "".join(out)
