"""``attnlab compare``: attention variants side by side, a thin call into :mod:`attnlab.apps.compare`."""

from __future__ import annotations

from attnlab.cli.options import add_command

EXAMPLES = """  attnlab compare                                          # every variant, 800 steps each
  attnlab compare --minutes 30                             # at most 30 minutes in all
  attnlab compare --variants bahdanau none transformer --steps 300
  attnlab compare --variants bahdanau bahdanau-guided      # + attention trained on the gold alignments
  attnlab compare --corpus tiny --steps 50 --out runs/quick-compare
"""


def register(commands) -> None:
    from attnlab.apps.compare import DEFAULT_VARIANTS, GUIDED_VARIANTS, VARIANTS

    p = add_command(commands, "compare", "train attention variants on one task and compare them in one table", EXAMPLES)
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS, metavar="NAME",
                   help=f"variants to compare (default: all but the supervised {' '.join(GUIDED_VARIANTS)}): "
                        f"{' '.join(VARIANTS)}")
    p.add_argument("--corpus", default="default", help="synthetic corpus preset (tiny, default, hard)")
    p.add_argument("--steps", type=int, default=800, help="training updates per variant")
    p.add_argument("--minutes", type=float, help="wall-time cap for all variants together, shared equally")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--test-sentences", type=int, default=500)
    p.add_argument("--threads", type=int, default=1, help="torch threads per variant")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same run)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--out", default="runs/compare", help="folder for checkpoints, table.md and report.html")
    p.add_argument("--overwrite", action="store_true", help="replace the comparison in --out")
    p.set_defaults(func=run)


def run(args) -> int:
    from attnlab.apps.compare import CompareSettings, compare, format_table, write_report

    settings = CompareSettings(
        variants=args.variants, corpus=args.corpus, steps=args.steps, minutes=args.minutes,
        batch_size=args.batch_size, test_sentences=args.test_sentences, threads=args.threads, seed=args.seed,
        out_dir=args.out, device=args.device, overwrite=args.overwrite,
    )
    results = compare(settings)
    print(format_table(results), end="")
    print(f"report: {write_report(results, settings)}")
    return 0
