"""``attnlab train gat`` and ``attnlab train han``: flags -> :mod:`attnlab.apps.graph`."""

from __future__ import annotations

from attnlab.apps import graph
from attnlab.cli.options import add_command, add_train_options, settings

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
SKIP = ("batch_size", "warmup", "bf16")  # the whole graph is the batch; constant learning rate; fp32


def register_train(tasks) -> None:
    gat = add_command(tasks, "gat", "train a GAT node classifier (karate club, SBM or your CSV)", GAT_EXAMPLES)
    gat.add_argument("--data", choices=list(graph.EMBEDDED), default="karate", help="embedded data set")
    gat.add_argument("--edges", help="your edge list CSV (columns source,target)")
    gat.add_argument("--nodes", help="your node CSV (id[,label][,split], numeric features)")
    gat.add_argument("--homophily", type=float, default=0.8, help="SBM: share of edges inside a community")
    gat.add_argument("--v2", action="store_true", help="GATv2's dynamic attention")
    _common(gat)
    gat.set_defaults(func=run, model="gat")
    han = add_command(tasks, "han", "train HAN on a generated heterogeneous (academic) graph", HAN_EXAMPLES)
    _common(han)
    han.set_defaults(func=run, model="han", out="runs/han", weight_decay=1e-3)


def _common(p) -> None:
    p.add_argument("--hidden", type=int, default=8, help="channels per head")
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--seeds", type=int, default=3, help="train this many times (seeds --seed, --seed + 1, ...); "
                   "report mean ± std")
    add_train_options(p, graph.GraphSettings, skip=SKIP)
    p.set_defaults(dropout=0.6)


def run(args) -> int:
    result = graph.train(settings(graph.GraphSettings, args))
    return result.exit_code  # 130 after Ctrl-C, 143 after SIGTERM
