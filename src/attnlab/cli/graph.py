"""``attnlab train gat`` and ``attnlab train han``: flags -> :mod:`attnlab.apps.graph`."""

from __future__ import annotations

from attnlab.cli.options import (
    add_command,
    add_run_options,
    add_train_options,
    device,
    runtime,
    settings,
)

GAT_EXAMPLES = """\
  attnlab train gat                              # karate club, 2 labelled members per faction
  attnlab train gat --data sbm --homophily 0.9   # synthetic communities: attention helps
  attnlab train gat --data sbm --homophily 0.2   # heterophilous: averaging neighbours hurts
  attnlab train gat --edges edges.csv --nodes nodes.csv --v2 --seeds 5
"""
HAN_EXAMPLES = """\
  attnlab train han                   # generated authors-papers-venues graph, 2 meta-paths
  attnlab train han --seeds 5 --steps 300 --out runs/han
"""
SKIP = ("batch_size",)  # the whole graph is every step's batch
TASKS = {"gat": "train a GAT node classifier (karate club, SBM or your CSV)",
         "han": "train HAN on a generated heterogeneous (academic) graph"}
COMMANDS = {"predict": "every node's class with a trained GAT or HAN (its graph, or your CSV files)"}
PREDICT_EXAMPLES = """  attnlab predict --ckpt runs/gat                             # the graph it was trained on
  attnlab predict --ckpt runs/gat-mine edges.csv nodes.csv    # your graph
"""


def register_train(tasks) -> None:
    from attnlab.apps import graph

    gat = add_command(tasks, "gat", TASKS["gat"], GAT_EXAMPLES)
    gat.add_argument("--data", choices=list(graph.EMBEDDED), default="karate", help="embedded data set")
    gat.add_argument("--edges", help="your edge list CSV (columns source,target)")
    gat.add_argument("--nodes", help="your node CSV (id[,label][,split], numeric features)")
    gat.add_argument("--homophily", type=float, default=0.8, help="SBM: share of edges inside a community")
    gat.add_argument("--v2", action="store_true", help="GATv2's dynamic attention")
    _common(gat)
    gat.set_defaults(func=run, model="gat")
    han = add_command(tasks, "han", TASKS["han"], HAN_EXAMPLES)
    _common(han)
    han.set_defaults(func=run, model="han", out="runs/han", weight_decay=1e-3)


def _common(p) -> None:
    from attnlab.apps import graph

    p.add_argument("--hidden", type=int, default=8, help="channels per head")
    p.add_argument("--heads", type=int, default=8, help="attention heads per layer")
    p.add_argument("--seeds", type=int, default=3, help="train this many times (seeds --seed, --seed + 1, ...); "
                   "report mean ± std")
    add_train_options(p, graph.GraphSettings, skip=SKIP)
    p.set_defaults(dropout=0.6)


def register(commands) -> None:
    p = add_command(commands, "predict", COMMANDS["predict"], PREDICT_EXAMPLES)
    p.add_argument("inputs", nargs="*", metavar="CSV",
                   help="GAT: your edges CSV and nodes CSV (default: the embedded graph it was trained on)")
    p.add_argument("--ckpt", required=True, help="GAT or HAN folder (attnlab train gat / han)")
    add_run_options(p)
    p.set_defaults(func=run_predict)


def run(args) -> int:
    from attnlab.apps import graph

    result = graph.train(settings(graph.GraphSettings, args))
    return result.exit_code  # 130 after Ctrl-C, 143 after SIGTERM


def run_predict(args) -> int:
    from attnlab.apps import predict

    runtime(args)
    for node, label, p in predict.predict_nodes(args.ckpt, args.inputs, device=device(args)):
        print(f"{node}\t{label}\t{p:.3f}")
    return 0
