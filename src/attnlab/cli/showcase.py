"""``attnlab showcase``: every mechanism on one toy query, printed and drawn."""

from __future__ import annotations

from attnlab.cli.options import add_command

EXAMPLES = """  attnlab showcase
  attnlab showcase --out runs/showcase --seed 3
"""


COMMANDS = {"showcase": "every attention mechanism on one toy query, weights printed and drawn"}


def register(subparsers) -> None:
    parser = add_command(subparsers, "showcase", COMMANDS["showcase"], EXAMPLES)
    parser.add_argument("--out", default="runs/showcase", help="folder for showcase.png")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the toy queries and keys")
    parser.set_defaults(func=run)


def run(args) -> int:
    from attnlab.apps.showcase import draw_showcase, showcase_weights

    weights = showcase_weights(seed=args.seed)
    for name, w in weights.items():
        print(f"{name}:")
        for row in w:
            print("   " + " ".join(f"{x:5.2f}" for x in row.tolist()))
    path = draw_showcase(weights, f"{args.out}/showcase.png")
    print(f"wrote {path}")
    return 0
