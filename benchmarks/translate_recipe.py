"""One recipe choice for the real-language translator, measured on the valid split.

Trains ``attnlab train translate --data gettext:LANG`` with the given settings (the
recipe's defaults for everything not set), then decodes the **valid** split (greedy,
placeholder-constrained, never the test split) and prints one row: valid BLEU and chrF
beside the copy baseline's, updates, CPU seconds per update (process CPU time, which a
busy machine does not inflate), and the mean training loss of the last 200 updates.
Each call appends its row to ``--table`` (JSON lines), so variants can run one per core
and be compared afterwards:

    python -m benchmarks.translate_recipe --language zh_CN --steps 2500 --name separate
    python -m benchmarks.translate_recipe --language zh_CN --steps 2500 --name joint8k --set shared_vocab=true
    python -m benchmarks.translate_recipe --language de --minutes 12 --name lr2e-3 --set lr=2e-3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import torch

from attnlab.apps.translate.app import TranslateSettings, fit
from attnlab.evaluation.real_language import copy_source, score_translations


def parse_value(text: str):
    """``true``/``false``/numbers as such, anything else a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--language", required=True)
    p.add_argument("--name", required=True, help="the variant's name in the table")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="TranslateSettings fields")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int)
    budget.add_argument("--minutes", type=float)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/recipe")
    p.add_argument("--table", default="runs/recipe/table.jsonl")
    args = p.parse_args()
    if any("=" not in item for item in args.set):
        p.error("--set: expected FIELD=VALUE items")
    fields = {name: parse_value(value) for name, value in (item.split("=", 1) for item in args.set)}
    known = {f.name for f in dataclasses.fields(TranslateSettings)}
    unknown = sorted(set(fields) - known)
    if unknown:
        p.error(f"--set: unknown field(s) {unknown}")
    settings = TranslateSettings(
        data=f"gettext:{args.language}", out=os.path.join(args.out, f"{args.language}-{args.name}"),
        steps=args.steps, max_minutes=args.minutes, threads=args.threads, overwrite=True, progress=False,
        **fields,
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    trained = fit(settings)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    valid = trained.splits.valid
    with torch.inference_mode():
        hypotheses = trained.translator.translate(list(valid.src), beam_size=1)
    scores = score_translations(valid.src, hypotheses, valid.tgt, args.language)
    copy = score_translations(valid.src, copy_source(valid.src), valid.tgt, args.language)
    losses = trained.result.losses
    row = {
        "language": args.language, "name": args.name, "set": fields, "updates": trained.result.step,
        "train_minutes": round(trained.result.elapsed_s / 60, 1), "cpu_s_per_update": round(cpu / max(trained.result.step, 1), 3),
        "wall_minutes": round(wall / 60, 1), "last200_loss": round(sum(losses[-200:]) / max(len(losses[-200:]), 1), 3),
        "valid_bleu": round(scores.bleu, 1), "valid_chrf": round(scores.chrf, 1), "valid_exact": round(scores.exact, 1),
        "valid_placeholders": round(scores.placeholders, 1), "copy_bleu": round(copy.bleu, 1), "copy_chrf": round(copy.chrf, 1),
        "load": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(row, ensure_ascii=False))
    os.makedirs(os.path.dirname(args.table) or ".", exist_ok=True)
    with open(args.table, "a", encoding="utf-8") as table:
        table.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
