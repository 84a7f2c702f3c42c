"""Every method on every prediction, their faithfulness averaged: the ranked table.

    evaluate(explainables, methods) -> Evaluation
        .attributions[name][n]  (L_n,) attribution of prediction n (None: skipped)
        .table[name]            the measures of :mod:`attnlab.explain.faithfulness`, averaged
                                over the predictions the method ran on
        .skipped[name]          why a method did not run on some predictions (flow above its
                                size bound; attention methods on a model without weights)
        .ranked()               method names, most faithful first (AOPC, then insertion AUC)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.explain.explainable import Explainable, groups
from attnlab.explain.faithfulness import FULL_CURVE, POINTS, PRECISION, faithfulness_groups

MEASURES = ("aopc", "deletion_auc", "insertion_auc", "comprehensiveness", "sufficiency")


@dataclass
class Evaluation:
    attributions: dict[str, list[Tensor | None]] = field(default_factory=dict)
    curves: dict[str, list[dict | None]] = field(default_factory=dict)
    table: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)  # what the numbers were measured with

    def ranked(self) -> list[str]:
        return sorted(self.table, key=lambda m: (-self.table[m]["aopc"], -self.table[m]["insertion_auc"]))

    def format_table(self) -> str:
        """The table as text, most faithful first (↑ higher is better, ↓ lower)."""
        heads = ("method", "AOPC↑", "del AUC↓", "ins AUC↑", "compr↑", "suff↓", "n")
        lines = ["{:<22}{:>9}{:>10}{:>10}{:>9}{:>9}{:>5}".format(*heads)]
        for name in self.ranked():
            row = self.table[name]
            lines.append(f"{name:<22}" + "".join(f"{row[m]:>{w}.4f}" for m, w in zip(MEASURES, (9, 10, 10, 9, 9)))
                         + f"{int(row['n']):>5}")
        lines += [f"{name:<22}skipped: {why}" for name, why in self.skipped.items() if name not in self.table]
        if self.settings:
            lines.append("; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in self.settings.items()))
        return "\n".join(lines)


def evaluate(explainables: list[Explainable], methods: dict[str, Callable[[Explainable], Tensor]],
             points: int = POINTS, precision: str = PRECISION) -> Evaluation:
    """Run each method on each prediction and measure its faithfulness (all methods' curves
    of one prediction -- or of the predictions sharing one forward -- deduplicated, and every
    input's copies scored in one call, padded together where the adapter can:
    :func:`faithfulness_groups`; ``points`` k on a long input's curves, their forwards in
    ``precision``)."""
    result = Evaluation(settings={"curve_points": f"every k up to {FULL_CURVE} units, else {points} points "
                                                  f"+ the ERASER bins", "precision": precision})
    result.attributions = {name: [] for name in methods}
    result.curves = {name: [] for name in methods}
    ran = [(group, [_attributions(x, methods, result.skipped) for x in group]) for group in groups(explainables)]
    kept = [([x for x, r in zip(group, rs) if r], [r for r in rs if r]) for group, rs in ran]  # what ran
    kept = [(xs, rs) for xs, rs in kept if xs]
    curves_of = faithfulness_groups([xs for xs, _ in kept], [rs for _, rs in kept], points=points, precision=precision)
    measured = iter(m for group in curves_of for m in group)
    for r in (r for _, rs in ran for r in rs):
        curves = next(measured) if r else {}
        for name in methods:
            result.attributions[name].append(r.get(name))
            result.curves[name].append(curves.get(name))
    for name in methods:
        measured = [c for c in result.curves[name] if c is not None]
        if measured:
            result.table[name] = {m: sum(c[m] for c in measured) / len(measured) for m in MEASURES}
            result.table[name]["n"] = len(measured)
    return result


def _attributions(x: Explainable, methods: dict[str, Callable[[Explainable], Tensor]],
                  skipped: dict[str, str]) -> dict[str, Tensor]:
    """Each method's attribution of ``x`` (fp64, CPU); why one could not run goes to ``skipped``."""
    ran = {}
    for name, method in methods.items():
        try:
            ran[name] = method(x).detach().double().cpu()
        except AttnlabError as e:  # too large (flow), or no attention weights to read
            skipped[name] = str(e)
    return ran
