"""``attnlab explain``: which explanation of a model's predictions is faithful, which heads matter."""

from __future__ import annotations

from attnlab.cli.options import add_command, add_run_options, device, runtime

EXAMPLES = """  attnlab explain --ckpt runs/lm "def fib(n):"                 # GPT: the next token
  attnlab explain --ckpt runs/bert "the list [MASK] sorts"       # BERT: the masked token
  attnlab explain --ckpt runs/demo/model --methods rollout integrated_gradients random
  attnlab explain --ckpt runs/vit digit.png --json vit.json --out vit.html
  attnlab explain --ckpt runs/gat                                # GAT: test nodes over their neighbours
"""
METHOD_NAMES = ("raw_attention", "rollout", "flow", "saliency", "grad_input", "integrated_gradients",
                "attention_gradient", "random")


def register(commands) -> None:
    p = add_command(commands, "explain", "attribution by every method, their faithfulness measured (deletion, "
                    "insertion, AOPC, ERASER), head importance and the logit lens", EXAMPLES)
    p.add_argument("inputs", nargs="*", help="sentences, prompts or image files (default: the checkpoint's "
                   "examples); GAT: an edges CSV and a nodes CSV")
    p.add_argument("--ckpt", required=True, help="checkpoint folder of any attnlab model")
    p.add_argument("--methods", nargs="+", metavar="NAME", choices=METHOD_NAMES,
                   help=f"the methods to run (default: all: {' '.join(METHOD_NAMES)})")
    p.add_argument("--no-heads", action="store_true", help="skip head importance (one forward per head)")
    p.add_argument("--curve-points", type=int, metavar="N",
                   help="deletion/insertion curves of inputs over 64 units at N evenly spaced points plus the "
                        "ERASER bins (default: 11; 21: the finer grid, about twice the model calls)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="the deletion/insertion curves' and integrated gradients' forwards in fp32 or under "
                        "bf16 autocast (the same ranking on trained models; faster at GPT-2 size, not on small "
                        "models)")
    p.add_argument("--json", metavar="FILE", help="write the table, head importance and every example as JSON")
    p.add_argument("--out", metavar="FILE.html", help="write the offline report page")
    add_run_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from attnlab.apps.explain import explain
    from attnlab.errors import AttnlabError

    for flag, value, suffix in (("--json", args.json, ".json"), ("--out", args.out, ".html")):
        if value and not value.lower().endswith(suffix):
            raise AttnlabError(f"{flag} {value}: expected a file name ending in {suffix}")
    runtime(args)
    report = explain(args.ckpt, args.inputs, methods=args.methods, heads=not args.no_heads,
                     device=device(args), curve_points=args.curve_points, precision=args.precision)
    print(report.format())
    if args.json:
        print(f"wrote {report.write_json(Path(args.json))}")
    if args.out:
        print(f"wrote {report.save(Path(args.out))}")
    return 0
