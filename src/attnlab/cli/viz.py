"""``attnlab viz``: a PNG of what any checkpoint attends to, by its model type."""

from __future__ import annotations

from attnlab.cli.options import add_command, add_run_options, device, runtime

EXAMPLES = """  attnlab viz --ckpt runs/demo/model                      # a translator's cross-attention
  attnlab viz --ckpt runs/demo/model "the big dog sleeps ." --out runs/viz/dog.png
  attnlab viz --ckpt runs/lm --out runs/viz "def fib(n):"   # GPT, BERT: every layer and head
  attnlab viz --ckpt runs/vit digit.png                   # ViT: rollout and class-token maps
  attnlab viz --ckpt runs/gat                             # GAT: the graph, edges by attention
"""


COMMANDS = {"viz": "draw what a trained model attends to (PNG)"}


def register(commands) -> None:
    p = add_command(commands, "viz", COMMANDS["viz"], EXAMPLES)
    p.add_argument("inputs", nargs="*", help="sentences, prompts or image files (default: a built-in example); "
                   "GAT: an edges CSV and a nodes CSV")
    p.add_argument("--ckpt", required=True, help="checkpoint folder of any attnlab model")
    p.add_argument("--out", default="runs/viz", help="a .png file, or a folder for <model_type>_attention.png")
    add_run_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from attnlab.apps.commands import draw

    runtime(args)
    print(f"wrote {draw(args.ckpt, args.inputs, args.out, device=device(args))}")
    return 0
