"""``attnlab demo``: the main job — train, evaluate and explain a translator in minutes."""

from __future__ import annotations

from attnlab.apps.demo import DemoSettings, run_demo
from attnlab.cli.options import add_command, add_run_options

EXAMPLES = """  attnlab demo                                   # what `make demo` runs
  attnlab demo --minutes 2 --out runs/quick-demo
  attnlab demo --bf16 --beam 4
  attnlab demo --resume                          # continue an interrupted demo
"""


def register(commands) -> None:
    p = add_command(
        commands, "demo",
        "train a Transformer translator on the synthetic corpus, report BLEU/chrF/AER and draw its attention",
        EXAMPLES,
    )
    p.add_argument("--out", default="runs/demo", help="folder for data/, model/, report.html and explorer.html")
    p.add_argument("--overwrite", action="store_true", help="replace the demo in --out")
    p.add_argument("--resume", action="store_true", help="continue the demo's training in --out")
    p.add_argument("--minutes", type=float, default=5.0, help="training time budget")
    p.add_argument("--steps", type=int, default=3000, help="training updates (fewer when they do not fit in --minutes)")
    p.add_argument("--corpus", default="default", help="synthetic corpus preset (tiny, default, hard)")
    p.add_argument("--preset", default="small", help="model preset")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--beam", type=int, default=1, help="beam size for the test split (1: greedy)")
    p.add_argument("--save-every", type=int, default=500, help="checkpoint every N updates")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_run_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    settings = DemoSettings(
        out_dir=args.out, corpus=args.corpus, preset=args.preset, steps=args.steps, max_minutes=args.minutes,
        bf16=args.bf16, beam_size=args.beam, seed=args.seed, progress=not args.quiet, device=args.device,
        threads=args.threads, resume=args.resume, overwrite=args.overwrite, save_every=args.save_every,
    )
    run_demo(settings)
    return 0
