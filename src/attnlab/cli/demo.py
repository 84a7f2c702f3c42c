"""``attnlab demo``: the main job — train, evaluate and explain a translator in minutes."""

from __future__ import annotations

from attnlab.cli.options import add_command, add_train_options, settings

EXAMPLES = """  attnlab demo                                   # what `make demo` runs
  attnlab demo --max-minutes 2 --out runs/quick-demo
  attnlab demo --bf16 --beam 4
  attnlab demo --resume                          # continue an interrupted demo
"""


COMMANDS = {"demo": "train a Transformer translator on the synthetic corpus, report BLEU/chrF/AER and draw "
                    "its attention"}


def register(commands) -> None:
    from attnlab.apps.demo import DemoSettings

    p = add_command(commands, "demo", COMMANDS["demo"], EXAMPLES)
    p.add_argument("--corpus", default="default", help="synthetic corpus preset (tiny, default, hard)")
    p.add_argument("--preset", default="small", help="model preset")
    p.add_argument("--beam", type=int, default=1, help="beam size for the test split (1: greedy)")
    add_train_options(p, DemoSettings, processes=False,
                      out="folder for data/, model/, report.html and explorer.html (never replaced without --overwrite)")
    p.set_defaults(func=run)


def run(args) -> int:
    from attnlab.apps.demo import DemoSettings, run_demo

    run_demo(settings(DemoSettings, args))
    return 0
