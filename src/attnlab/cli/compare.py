"""``attnlab compare``: attention variants side by side, a thin call into :mod:`attnlab.apps.compare`."""

from __future__ import annotations

from attnlab.cli.options import add_command, add_train_options, settings

EXAMPLES = """  attnlab compare                                          # every variant, 800 steps each
  attnlab compare --max-minutes 30                         # 30 minutes in all, shared equally
  attnlab compare --variants bahdanau none transformer --steps 300
  attnlab compare --variants bahdanau bahdanau-guided      # + attention trained on the gold alignments
  attnlab compare --corpus tiny --steps 50 --out runs/quick-compare
"""
COMMANDS = {"compare": "train attention variants on one task and compare them in one table"}
UNUSED = ("resume", "warmup", "weight_decay", "dropout", "save_every", "bf16")  # each variant uses its own


def register(commands) -> None:
    from attnlab.apps.compare import DEFAULT_VARIANTS, GUIDED_VARIANTS, VARIANTS, CompareSettings

    p = add_command(commands, "compare", COMMANDS["compare"], EXAMPLES)
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS, metavar="NAME",
                   help=f"variants to compare (default: all but the supervised {' '.join(GUIDED_VARIANTS)}): "
                        f"{' '.join(VARIANTS)}")
    p.add_argument("--corpus", default="default", help="synthetic corpus preset (tiny, default, hard)")
    p.add_argument("--test-sentences", type=int, default=500, help="test sentences each variant is measured on")
    add_train_options(p, CompareSettings, skip=UNUSED, processes=False,
                      out="folder for each variant's checkpoint, results.json, table.md and report.html")
    p.set_defaults(func=run)


def run(args) -> int:
    from attnlab.apps.compare import CompareSettings, compare, format_table, write_report

    chosen = settings(CompareSettings, args)
    results = compare(chosen)
    print(format_table(results), end="")
    print(f"report: {write_report(results, chosen)}")
    return 0
