"""``attnlab explore``: the interactive, offline attention explorer of any checkpoint."""

from __future__ import annotations

import tempfile
from pathlib import Path

from attnlab.cli.options import add_command, add_run_options, runtime

EXAMPLES = """  attnlab explore --ckpt runs/demo/model --out runs/explore.html     # one self-contained file
  attnlab explore --ckpt runs/lm "def fib(n):" "import os" --out lm.html
  attnlab explore --ckpt runs/seq2seq --compare runs/location --out compare.html
  attnlab explore --ckpt runs/vit digit.png --out vit.html
  attnlab explore --ckpt runs/bert --serve --port 8765                # live: type a sentence, see its attention
"""


def register(commands) -> None:
    p = add_command(commands, "explore", "the interactive attention explorer: one offline HTML file, or a live "
                    "local server (--serve)", EXAMPLES)
    p.add_argument("inputs", nargs="*", help="sentences, prompts or image files (default: a built-in example); "
                   "GAT: an edges CSV and a nodes CSV")
    p.add_argument("--ckpt", required=True, help="checkpoint folder of any attnlab model")
    p.add_argument("--compare", metavar="DIR2", help="a second checkpoint of the same task, shown side by side")
    p.add_argument("--out", default="runs/explore.html", help="the HTML file to write")
    p.add_argument("--serve", action="store_true", help="serve the page on 127.0.0.1 with live inference")
    p.add_argument("--port", type=int, default=8765, help="--serve: the port (0: any free one)")
    add_run_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from attnlab.apps import app_for, attentions_for, model_type
    from attnlab.errors import AttnlabError
    from attnlab.training.config import resolve_device
    from attnlab.viz.explorer import serve, write_page

    runtime(args)
    device = str(resolve_device(args.device))
    items = [attentions_for(args.ckpt, args.inputs, device=device)]
    title = f"attnlab explorer: {args.ckpt}"
    if not args.serve:
        compare = None
        if args.compare:
            if model_type(args.compare) != model_type(args.ckpt) and {model_type(args.compare), model_type(args.ckpt)} \
                    - {"transformer", "seq2seq"}:
                raise AttnlabError(f"--compare {args.compare}: holds a {model_type(args.compare)!r} model, "
                                   f"--ckpt a {model_type(args.ckpt)!r}: compare two checkpoints of the same task")
            compare = [attentions_for(args.compare, args.inputs, device=device)]
        path = write_page(items, Path(args.out), title=title, compare=compare, compare_title=args.compare)
        print(f"wrote {path} (open it in a browser; it needs no network)")
        return 0
    if not 0 <= args.port < 65536:
        raise AttnlabError(f"--port: expected 0..65535, got {args.port}")
    app = app_for(args.ckpt)
    loaded = app.load(args.ckpt, device=device) if model_type(args.ckpt) not in ("gat", "han") else None
    kind = {"vit": "image", "gat": "graph", "han": "graph"}.get(model_type(args.ckpt), "text")

    def infer(request: dict):
        if kind == "image":
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "upload"
                path.write_bytes(request["image_bytes"])
                return app.attentions(loaded, [str(path)])
        if kind == "graph":
            raise AttnlabError("live input is not supported for graph models: the page shows the trained graph")
        return app.attentions(loaded, [request["text"]])

    serve(infer, items=items, title=title, input_kind=kind, port=args.port,
          ready=lambda url: print(f"serving {url} (Ctrl-C stops)", flush=True))
    return 0
