"""``attnlab explore``: the interactive, offline attention explorer of any checkpoint."""

from __future__ import annotations

from attnlab.cli.options import add_command, add_run_options, device, runtime

EXAMPLES = """  attnlab explore --ckpt runs/demo/model --out runs/explore.html     # one self-contained file
  attnlab explore --ckpt runs/demo/model --out runs/pages             # runs/pages/explorer.html
  attnlab explore --ckpt runs/lm "def fib(n):" "import os" --out lm.html
  attnlab explore --ckpt runs/seq2seq --compare runs/location --out compare.html
  attnlab explore --ckpt runs/vit digit.png --out vit.html
  attnlab explore --ckpt runs/bert --serve --port 8765                # live: type a sentence, see its attention
"""


COMMANDS = {"explore": "the interactive attention explorer: one offline HTML file, or a live local server (--serve)"}


def register(commands) -> None:
    p = add_command(commands, "explore", COMMANDS["explore"], EXAMPLES)
    p.add_argument("inputs", nargs="*", help="sentences, prompts or image files (default: a built-in example); "
                   "GAT: an edges CSV and a nodes CSV")
    p.add_argument("--ckpt", required=True, help="checkpoint folder of any attnlab model")
    p.add_argument("--compare", metavar="DIR2", help="a second checkpoint of the same task, shown side by side")
    p.add_argument("--out", default="runs/explore.html",
                   help="an .html file, or a folder for explorer.html (a name without a suffix is a folder)")
    p.add_argument("--serve", action="store_true", help="serve the page on 127.0.0.1 with live inference")
    p.add_argument("--port", type=int, default=8765, help="--serve: the port (0: any free one)")
    add_run_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from attnlab.apps import explorer

    runtime(args)
    where = device(args)
    if not args.serve:
        path = explorer.write(args.ckpt, args.inputs, args.out, compare=args.compare, device=where)
        print(f"wrote {path} (open it in a browser; it needs no network)")
        return 0
    explorer.serve(args.ckpt, args.inputs, port=args.port, device=where,
                   ready=lambda url: print(f"serving {url} (Ctrl-C stops)", flush=True))
    return 0
