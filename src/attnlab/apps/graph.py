"""Node classification with graph attention: GAT (karate club, SBM, your CSV) and HAN.

    from attnlab.apps import graph
    result = graph.train(graph.GraphSettings(model="gat", data="karate", out="runs/gat"))
    model, data = graph.load("runs/gat")
    explained = graph.attentions(model, data)          # every layer's (edge_index, alpha)

The whole graph is one batch, so training is the one Trainer with a batch source that
returns the full graph every step (``GraphBatches``): progress, checkpoints, ``resume``,
Ctrl-C and seeds come with it. The loss is the cross-entropy on the training nodes; the
Trainer evaluates after every update and the weights with the best validation accuracy
(the loss breaks ties; training accuracy when there is no validation node) are kept — a
copy of them travels in every checkpoint (``best.safetensors``), so a resumed run keeps
its best model. Each seed is a run of its own in ``out/seeds/<k>``; ``out`` holds the best
seed's model, ``metrics.json`` (test accuracy mean ± std) and, for GAT, ``attention.png``.

Notation: N nodes, E edges, K classes, H heads.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.apps.common import TrainSettings, at_least, check_out, train_config
from attnlab.attention.maps import Explained
from attnlab.data import graphs
from attnlab.errors import AttnlabError
from attnlab.io import CONFIG_FILE, read_json, read_safetensors, write_json, write_safetensors
from attnlab.models.gat import GAT, HAN, GATConfig, HANConfig
from attnlab.training import Trainer

EMBEDDED = ("karate", "sbm")
# a graph this small (nodes x features) trains fastest on one thread, whatever the machine: the
# threads' start-up costs more than their share of the work (the karate club on a busy 2-core
# host: 43 ms for one 34 x 34 linear map on two threads)
ONE_THREAD_UP_TO = 100_000
INPUT_KIND = "graph"  # what a live explorer page takes: nothing (the page shows the trained graph)
BEST_FILE, BEST_STATE = "best.safetensors", "best.json"


@dataclass
class GraphSettings(TrainSettings):
    """``model`` "gat" or "han"; GAT's data: an embedded graph or ``edges`` + ``nodes`` CSVs."""

    model: str = "gat"
    data: str = "karate"
    edges: str | None = None
    nodes: str | None = None
    homophily: float = 0.8
    v2: bool = False
    hidden: int = 8
    heads: int = 8
    seeds: int = 3
    out: str = "runs/gat"
    steps: int | None = 200  # epochs: one full-batch update each
    lr: float = 0.005
    warmup: int = 0
    weight_decay: float = 5e-4
    batch_size: int = 1  # the whole graph: no --batch-size flag

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model not in ("gat", "han"):
            raise AttnlabError(f"model: expected 'gat' or 'han', got {self.model!r}")
        if self.data not in EMBEDDED:
            raise AttnlabError(f"--data: expected one of {list(EMBEDDED)}, got {self.data!r}")
        if (self.edges is None) != (self.nodes is None):
            raise AttnlabError("--edges and --nodes go together: give both CSV files or neither")
        at_least(1, seeds=self.seeds, hidden=self.hidden, heads=self.heads)
        if not 0 <= self.homophily <= 1:
            raise AttnlabError(f"--homophily: expected a number in [0, 1], got {self.homophily}")


@dataclass
class GraphResult:
    metrics: dict
    model: GAT | HAN
    data: graphs.GraphData
    interrupted: bool = False
    exit_code: int = 0  # 130 after Ctrl-C, 143 after SIGTERM


class GraphBatches:
    """The full graph as every step's batch: ``x``, the edges (GAT) or meta-path edges (HAN).

    ``replicate``: not a stack of rows, so under torchrun every rank trains on the whole
    graph (the same gradient on each: the run equals one process, without a speed-up)."""

    replicate = True

    def __init__(self, data: graphs.GraphData, han: bool):
        self.data, self.han = data, han

    def batch(self, step: int) -> dict[str, Tensor]:
        d = self.data
        batch = {"x": d.x, "y": d.y, "train_mask": d.train_mask}
        if self.han:
            batch.update({f"metapath_{i}": e for i, e in enumerate(d.metapaths.values())})
        else:
            batch["edge_index"] = d.edge_index
        return batch


def run_model(model: GAT | HAN, batch: dict[str, Tensor], need_weights: bool = False):
    if isinstance(model, HAN):
        edges = [batch[f"metapath_{i}"] for i in range(model.config.num_metapaths)]
        return model(batch["x"], edges, need_weights=need_weights)
    return model(batch["x"], batch["edge_index"], need_weights=need_weights)


def node_loss(model: GAT | HAN, batch: dict[str, Tensor]) -> Tensor:
    """Cross-entropy on the training nodes (the others are unlabelled for training)."""
    mask = batch["train_mask"]
    return F.cross_entropy(run_model(model, batch).logits[mask], batch["y"][mask])


def accuracy(logits: Tensor, y: Tensor, mask: Tensor) -> float:
    if not bool(mask.any()):
        return float("nan")
    return float((logits[mask].argmax(-1) == y[mask]).float().mean())


def load_data(settings: GraphSettings) -> graphs.GraphData:
    if settings.model == "han":
        return graphs.academic_graph()
    if settings.edges is not None:
        return graphs.load_csv_graph(settings.edges, settings.nodes)
    if settings.data == "sbm":
        return graphs.stochastic_block_model(homophily=settings.homophily)
    return graphs.karate_club()


def build_model(settings: GraphSettings, data: graphs.GraphData) -> GAT | HAN:
    dropout = 0.6 if settings.dropout is None else settings.dropout
    if settings.model == "han":
        return HAN(HANConfig(data.x.size(1), data.num_classes, len(data.metapaths), hidden_dim=settings.hidden,
                             heads=settings.heads, dropout=dropout))
    return GAT(GATConfig(data.x.size(1), data.num_classes, hidden_dim=settings.hidden, heads=settings.heads,
                         dropout=dropout, v2=settings.v2))


class BestModel:
    """The Trainer's ``evaluate``: keeps the weights with the best validation score."""

    def __init__(self, data: graphs.GraphData, batches: GraphBatches):
        self.data, self.batches = data, batches
        self.select = data.val_mask if bool(data.val_mask.any()) else data.train_mask
        self.score: tuple[float, float] = (-1.0, 0.0)
        self.state: dict[str, Tensor] | None = None

    def __call__(self, model: GAT | HAN) -> dict[str, float]:
        d = self.data
        logits = run_model(model, self.batches.batch(0)).logits
        # accuracy first, the loss breaks ties (small validation sets saturate early)
        score = (accuracy(logits, d.y, self.select), -F.cross_entropy(logits[self.select], d.y[self.select]).item())
        if score > self.score:
            self.score, self.state = score, {k: v.detach().clone() for k, v in model.state_dict().items()}
        return {"val_acc": score[0], "val_loss": -score[1]}

    def save(self, folder: Path) -> None:
        if self.state is not None:
            write_safetensors(folder / BEST_FILE, self.state)
            write_json(folder / BEST_STATE, {"score": list(self.score)})

    def restore(self, folder: Path) -> None:
        if (folder / BEST_FILE).is_file():
            self.state = read_safetensors(folder / BEST_FILE)
            self.score = tuple(read_json(folder / BEST_STATE)["score"])


def train_seed(settings: GraphSettings, data: graphs.GraphData, seed: int) -> tuple[GAT | HAN, dict, int]:
    """One run of ``settings.steps`` full-batch updates in ``out/seeds/<seed>``."""
    folder = Path(settings.out) / "seeds" / str(seed)
    torch.manual_seed(seed)  # the initial weights are part of the run
    model = build_model(settings, data)
    batches = GraphBatches(data, han=settings.model == "han")
    best = BestModel(data, batches)
    steps = settings.steps or 200
    resume = settings.resume and (folder / "trainer_state.json").is_file()
    if resume:
        best.restore(folder)
    config = train_config(settings, steps=steps, eval_every=1, seed=seed, out_dir=str(folder), schedule="constant",
                          warmup_steps=min(settings.warmup, steps), grad_clip=None, save_every=settings.save_every or 0,
                          log_every=max(1, steps // 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    result = Trainer(model, batches, config, loss_fn=node_loss, evaluate=best, optimizer=optimizer,
                     save_extra=best.save).fit(resume=resume)
    if best.state is not None:
        model.load_state_dict(best.state)
    model.eval()
    with torch.no_grad():
        logits = run_model(model, batches.batch(0)).logits
    accs = [accuracy(logits, data.y, m) for m in (data.train_mask, data.val_mask, data.test_mask)]
    metrics = {"seed": seed, "train_acc": accs[0], "val_acc": accs[1], "test_acc": accs[2], "steps": result.step}
    return model, metrics, result.exit_code  # non-zero: interrupted


def train(settings: GraphSettings, echo=print) -> GraphResult:
    """Train ``settings.seeds`` models; save the best-validation one and the metrics in ``out``."""
    out = check_out(settings.out, resume=settings.resume, overwrite=settings.overwrite, wait=settings.wait, kinds=("gat", "han"))
    data = load_data(settings)
    if settings.threads is None and not settings.resume and data.x.numel() <= ONE_THREAD_UP_TO:
        settings = dataclasses.replace(settings, threads=1)
    settings.apply_threads()
    echo(data.summary() + (f"; meta-paths: {', '.join(data.metapaths)}" if settings.model == "han" else ""))
    runs, best_model, best_val, interrupted = [], None, -1.0, 0
    for seed in range(settings.seed, settings.seed + settings.seeds):
        model, metrics, interrupted = train_seed(settings, data, seed)
        echo(f"seed {seed}: test accuracy {metrics['test_acc']:.4f} (val {metrics['val_acc']:.4f})")
        runs.append(metrics)
        selection = metrics["val_acc"] if metrics["val_acc"] == metrics["val_acc"] else metrics["train_acc"]
        if best_model is None or selection > best_val:
            best_model, best_val = model, selection
        if interrupted:
            break
    best_model.save_pretrained(out)
    accs = [r["test_acc"] for r in runs]
    metrics = {"data": data.name, "model": settings.model + ("v2" if settings.v2 else ""),
               "test_acc_mean": statistics.fmean(accs), "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
               "runs": runs, "source": _source(settings)}
    if isinstance(best_model, HAN):
        with torch.no_grad():
            beta = run_model(best_model, GraphBatches(data, han=True).batch(0)).semantic_weights.tolist()
        metrics["semantic_weights"] = dict(zip(data.metapaths, beta))
        echo("semantic attention: " + ", ".join(f"{k} {w:.3f}" for k, w in metrics["semantic_weights"].items()))
    write_json(out / "metrics.json", metrics)
    if isinstance(best_model, GAT):
        from attnlab.viz.figures import draw_explained

        draw_explained(attentions(best_model, data), out / "attention.png")
    echo(f"{data.name}: test accuracy {metrics['test_acc_mean']:.4f} ± {metrics['test_acc_std']:.4f} over "
         f"{len(accs)} seed(s); saved to {out}")
    return GraphResult(metrics, best_model, data, bool(interrupted), interrupted)


def _source(settings: GraphSettings) -> dict:
    """How to rebuild an embedded graph later; a CSV graph is named, never re-read from here."""
    if settings.model == "han":
        return {"data": "academic"}
    if settings.edges is not None:
        return {"data": "csv"}
    return {"data": settings.data, "homophily": settings.homophily}


def load(ckpt: str | Path, inputs: list[str] | None = None, device: str = "cpu") -> tuple[GAT | HAN, graphs.GraphData]:
    """A trained GAT/HAN and its graph: the embedded graph it was trained on, or ``inputs``
    = [edges.csv, nodes.csv] (a checkpoint never names files for us to read)."""
    ckpt = Path(ckpt)
    if not (ckpt / CONFIG_FILE).is_file():
        raise AttnlabError(f"--ckpt {ckpt}: no {CONFIG_FILE}: not a checkpoint folder")
    model_type = read_json(ckpt / CONFIG_FILE).get("model_type")
    model = (HAN if model_type == "han" else GAT).from_pretrained(ckpt, map_location=device)
    if inputs:
        if len(inputs) != 2 or model_type == "han":
            raise AttnlabError("a GAT takes no inputs, or an edges CSV and a nodes CSV; HAN takes none")
        return model.eval(), graphs.load_csv_graph(inputs[0], inputs[1])
    source = read_json(ckpt / "metrics.json").get("source", {}) if (ckpt / "metrics.json").is_file() else {}
    if model_type == "han":
        return model.eval(), graphs.academic_graph()
    if source.get("data") == "csv":
        raise AttnlabError(f"{ckpt} was trained on your CSV graph: give its edges and nodes CSV files as inputs")
    if source.get("data") == "sbm":
        homophily = source.get("homophily", 0.8)
        if not isinstance(homophily, (int, float)) or not 0 <= homophily <= 1:
            raise AttnlabError(f"{ckpt / 'metrics.json'}: source.homophily must be a number in [0, 1]")
        return model.eval(), graphs.stochastic_block_model(homophily=float(homophily))
    return model.eval(), graphs.karate_club()


def attentions_of_checkpoint(ckpt: str | Path, inputs: list[str], device: str = "cpu") -> Explained:
    """``attnlab viz`` / ``explore``: the checkpoint's attention on its graph (``inputs``: the
    user's edges and nodes CSV files, else the embedded graph it was trained on)."""
    return attentions(*load(ckpt, inputs, device=device))


@torch.no_grad()
def predict(model: GAT | HAN, data: graphs.GraphData) -> list[tuple[str, str, float]]:
    """Every node's predicted class and its probability: ``(node name, class, p)``."""
    model.eval()
    probs = run_model(model, GraphBatches(data, han=isinstance(model, HAN)).batch(0)).logits.float().softmax(-1)
    p, k = probs.max(-1)
    names = data.node_names or [str(i) for i in range(data.num_nodes)]
    return [(name, data.class_names[int(c)], float(q)) for name, c, q in zip(names, k, p)]


@torch.no_grad()
def attentions(model: GAT | HAN, data: graphs.GraphData) -> Explained:
    """Every layer's (or meta-path's) edge attention, with node names and classes."""
    model.eval()
    out = run_model(model, GraphBatches(data, han=isinstance(model, HAN)).batch(0), need_weights=True)
    names = data.node_names or [str(i) for i in range(data.num_nodes)]
    extras = {"node_classes": [data.y.tolist()], "class_names": data.class_names,
              "predictions": [[data.class_names[int(k)] for k in out.logits.argmax(-1)]]}
    if isinstance(model, HAN):
        extras["metapaths"] = list(data.metapaths)
        extras["metapath_weights"] = out.semantic_weights
    return Explained(model.model_type, out.attentions, {"nodes": [names]}, extras)
