"""``attnlab train gat`` and ``attnlab train han``: node classification with graph attention.

Thin calls into :mod:`attnlab.models.gat` and :mod:`attnlab.data.graphs`: train over
several seeds, print test accuracy as mean ± std, save the best-validation model
(``save_pretrained``), ``metrics.json`` and, for GAT, ``attention.png``.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import asdict
from pathlib import Path

import torch

from attnlab.cli.main import add_command
from attnlab.data import graphs
from attnlab.errors import AttnlabError
from attnlab.io import read_json, write_json
from attnlab.models.gat import GAT, HAN, FitConfig, GATConfig, HANConfig, fit_node_classifier
from attnlab.training.rng import set_seed

GAT_EXAMPLES = """\
  attnlab train gat                              # karate club, 2 labelled members per faction
  attnlab train gat --data sbm --homophily 0.9   # synthetic communities: attention helps
  attnlab train gat --data sbm --homophily 0.2   # heterophilous: averaging neighbours hurts
  attnlab train gat --edges edges.csv --nodes nodes.csv --v2 --seeds 5
"""
HAN_EXAMPLES = """\
  attnlab train han                   # generated authors-papers-venues graph, 2 meta-paths
  attnlab train han --seeds 5 --epochs 300 --out runs/han
"""


def register_train(tasks) -> None:
    gat = add_command(tasks, "gat", "train a GAT node classifier (karate club, SBM or your CSV)", GAT_EXAMPLES)
    gat.add_argument("--data", choices=["karate", "sbm"], default="karate", help="embedded data set")
    gat.add_argument("--edges", type=Path, help="your edge list CSV (columns source,target)")
    gat.add_argument("--nodes", type=Path, help="your node CSV (id[,label][,split], numeric features)")
    gat.add_argument("--homophily", type=float, default=0.8, help="SBM: share of edges inside a community")
    gat.add_argument("--v2", action="store_true", help="GATv2's dynamic attention")
    gat.add_argument("--hidden", type=int, default=8, help="channels per head")
    gat.add_argument("--heads", type=int, default=8)
    _add_common(gat, out="runs/gat", weight_decay=5e-4)
    gat.set_defaults(func=run_gat)
    han = add_command(tasks, "han", "train HAN on a generated heterogeneous (academic) graph", HAN_EXAMPLES)
    han.add_argument("--hidden", type=int, default=8, help="channels per head")
    han.add_argument("--heads", type=int, default=8)
    _add_common(han, out="runs/han", weight_decay=1e-3)
    han.set_defaults(func=run_han)


def _add_common(parser: argparse.ArgumentParser, out: str, weight_decay: float) -> None:
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--weight-decay", type=float, default=weight_decay)
    parser.add_argument("--dropout", type=float, default=0.6)
    parser.add_argument("--seeds", type=int, default=3, help="train this many times; report mean ± std")
    parser.add_argument("--out", type=Path, default=Path(out), help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _data_source(args) -> dict:
    """What ``attnlab viz`` needs to rebuild the graph later (stored in metrics.json)."""
    if (args.edges is None) != (args.nodes is None):
        raise AttnlabError("--edges and --nodes go together: give both CSV files or neither")
    if args.edges is not None:
        return {"data": "csv", "edges": str(args.edges.resolve()), "nodes": str(args.nodes.resolve())}
    return {"data": args.data, "homophily": args.homophily}


def _load_gat_data(source: dict) -> graphs.GraphData:
    if source["data"] == "csv":
        return graphs.load_csv_graph(source["edges"], source["nodes"])
    if source["data"] == "sbm":
        return graphs.stochastic_block_model(homophily=source["homophily"])
    return graphs.karate_club()


def draw_gat(model: GAT, data: graphs.GraphData, path: Path) -> Path:
    """The graph with edges drawn by the first layer's attention."""
    from attnlab.viz.graph import draw_graph_attention

    model.eval()
    with torch.no_grad():
        edge_index, alpha = model(data.x, data.edge_index, return_attention_weights=True).attentions[0]
    draw_graph_attention(
        edge_index, alpha, data.num_nodes, data.y, data.node_names, data.class_names,
        path=path, title=f"GAT layer-1 attention on {data.name}",
    )
    return path


def view_gat(ckpt: Path, inputs: list[str], out: Path) -> Path:
    """``attnlab viz --ckpt DIR [edges.csv nodes.csv]``: the trained GAT's attention on its graph."""
    if inputs and len(inputs) != 2:
        raise AttnlabError("attnlab viz for a GAT takes no inputs, or an edges CSV and a nodes CSV")
    source = {"data": "csv", "edges": inputs[0], "nodes": inputs[1]} if inputs else {"data": "karate"}
    metrics_file = ckpt / "metrics.json"
    if not inputs and metrics_file.is_file():
        source = read_json(metrics_file).get("source", source)
    out = out if out.suffix == ".png" else out / "graph_attention.png"
    return draw_gat(GAT.from_pretrained(ckpt), _load_gat_data(source), out)


def _check(args) -> None:
    for name in ("epochs", "seeds", "hidden", "heads"):
        if getattr(args, name) < 1:
            raise AttnlabError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not 0.0 <= args.dropout < 1.0:
        raise AttnlabError(f"--dropout must be in [0, 1), got {args.dropout}")


def _train_seeds(args, build, logits_fn_for, data) -> tuple[list[dict], torch.nn.Module]:
    """Train one model per seed; return per-seed metrics and the best-validation model."""
    fit = FitConfig(epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, progress=not args.quiet)
    runs, best_model, best_val = [], None, -1.0
    for seed in range(args.seeds):
        set_seed(seed)
        model = build()
        result = fit_node_classifier(model, logits_fn_for(model), data, fit)
        print(f"seed {seed}: test accuracy {result.test_acc:.4f} (val {result.val_acc:.4f}, best epoch {result.best_epoch})")
        runs.append({"seed": seed, **{k: v for k, v in asdict(result).items() if k != "losses"}})
        selection = result.val_acc if result.val_acc == result.val_acc else result.train_acc  # NaN: no val nodes
        if best_model is None or selection > best_val:
            best_model, best_val = model, selection
        if result.interrupted:
            break
    return runs, best_model


def _report(args, data, runs: list[dict], extra: dict) -> dict:
    accs = [r["test_acc"] for r in runs]
    std = statistics.stdev(accs) if len(accs) > 1 else 0.0
    metrics = {"data": data.name, "test_acc_mean": statistics.fmean(accs), "test_acc_std": std, "runs": runs, **extra}
    write_json(args.out / "metrics.json", metrics)
    print(f"{data.name}: test accuracy {metrics['test_acc_mean']:.4f} ± {std:.4f} over {len(accs)} seed(s); saved to {args.out}")
    return metrics


def run_gat(args) -> int:
    _check(args)
    source = _data_source(args)
    data = _load_gat_data(source)
    print(data.summary())
    config = GATConfig(
        data.x.size(1), data.num_classes, hidden_dim=args.hidden, heads=args.heads, dropout=args.dropout, v2=args.v2
    )
    runs, model = _train_seeds(
        args, lambda: GAT(config), lambda m: (lambda: m(data.x, data.edge_index).logits), data
    )
    model.save_pretrained(args.out)
    draw_gat(model, data, args.out / "attention.png")
    _report(args, data, runs, {"model": "gatv2" if args.v2 else "gat", "source": source})
    return 0


def run_han(args) -> int:
    _check(args)
    data = graphs.academic_graph()
    print(data.summary() + f"; meta-paths: {', '.join(data.metapaths)}")
    edges = list(data.metapaths.values())
    config = HANConfig(
        data.x.size(1), data.num_classes, len(edges), hidden_dim=args.hidden, heads=args.heads, dropout=args.dropout
    )
    runs, model = _train_seeds(args, lambda: HAN(config), lambda m: (lambda: m(data.x, edges).logits), data)
    model.save_pretrained(args.out)
    with torch.no_grad():
        beta = model(data.x, edges).semantic_weights.tolist()
    semantic = dict(zip(data.metapaths, beta))
    print("semantic attention: " + ", ".join(f"{name} {w:.3f}" for name, w in semantic.items()))
    _report(args, data, runs, {"model": "han", "semantic_weights": semantic})
    return 0
