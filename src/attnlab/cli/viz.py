"""``attnlab viz``: attention pictures of any checkpoint, by its model type (see attnlab.viz)."""

from __future__ import annotations

from attnlab.cli.main import add_command

EXAMPLES = """  attnlab viz --ckpt runs/demo/model
  attnlab viz --ckpt runs/demo/model "the big dog sleeps ." --out runs/viz/dog.html
"""


def register(commands) -> None:
    p = add_command(commands, "viz", "draw what a trained model attends to (HTML report / PNG)", EXAMPLES)
    p.add_argument("inputs", nargs="*", help="sentences or files to run the model on (default: built-in examples)")
    p.add_argument("--ckpt", required=True, help="checkpoint folder")
    p.add_argument("--out", default="runs/viz", help="output file or folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from attnlab.viz import visualize

    print(f"wrote {visualize(args.ckpt, args.inputs, args.out)}")
    return 0
