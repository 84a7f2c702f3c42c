"""Test BLEU against minutes of training, from the result files of ``benchmarks.real_language``.

Each ``results_*.json`` the benchmark wrote holds, per language, the Transformer's test
BLEU (its table row, also after ``--reuse``), its minutes of training and the copy baseline; the checkpoint beside it
(``<language>-transformer/trainer_state.json``) its learning rate. This draws one point per
run (colour: language; filled: the recipe's learning rate ``RECIPE["lr"]``, open: an older
recipe's), a line through the runs of a language at one learning rate in order of minutes,
and copying the source as a dashed line of the same colour:

    python -m benchmarks.real_language_plot runs/fr15/results_fr_transformer.json \\
        runs/fr60/results_fr_transformer.json ... --out docs/images/real_bleu_minutes.png
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

from attnlab.apps.translate.app import RECIPE

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def points(files: list[str]) -> tuple[dict[tuple[str, float], list[tuple[float, float]]], dict[str, float]]:
    """``{(language, lr): [(minutes of training, test BLEU), ...]}`` and each language's copy BLEU."""
    runs: dict[tuple[str, float], list[tuple[float, float]]] = defaultdict(list)
    copy: dict[str, float] = {}
    for name in files:
        for language, result in json.loads(Path(name).read_text(encoding="utf-8")).items():
            run = result.get("transformer_run")
            if not run:
                continue
            state = json.loads((Path(name).parent / f"{language}-transformer" / "trainer_state.json").read_text())
            key = (language, state["config"]["lr"])
            row = next(v for k, v in result.items() if k.startswith("transformer ("))  # the printed table's row
            runs[key].append((run["elapsed_s"] / 60, float(row[0])))
            copy[language] = float(result["copy source"][0])
    return {k: sorted(v) for k, v in runs.items()}, copy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--out", default="docs/images/real_bleu_minutes.png")
    args = p.parse_args()
    runs, copy = points(args.files)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {language: palette[i] for i, language in enumerate(sorted(copy))}
    for (language, lr), xy in sorted(runs.items()):
        xs, ys = zip(*xy)
        colour, recipe = colours[language], lr == RECIPE["lr"]
        ax.plot(xs, ys, "o-" if recipe else "o:", color=colour, markerfacecolor=colour if recipe else "white",
                label=f"en→{language}, lr {lr:g}")
        for x, y in xy:
            shift = (-10 + 14 * sorted(copy).index(language), 6 if recipe else -13)  # labels of nearby runs apart
            ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=shift, fontsize=8, color=colour)
    for language, bleu in sorted(copy.items()):
        ax.axhline(bleu, color=colours[language], linestyle="--", linewidth=1, label=f"copy the source ({language})")
    ax.set_xlabel("minutes of training (a 2-core CPU: one thread; both for the quiet 15-minute de and zh runs)")
    ax.set_ylabel("test BLEU (held-out programs)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}: " + "; ".join(f"{k} lr {lr:g}: " + ", ".join(f"{x:.0f} min {y:.1f}" for x, y in v)
                                            for (k, lr), v in sorted(runs.items())))


if __name__ == "__main__":
    main()
