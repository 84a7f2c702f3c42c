"""GATConv / GATv2 against PyTorch Geometric, side by side in one process, same weights.

    python -m benchmarks.graph [--quick] [--no-large] [--no-train]

1. Speed: forward+backward (and forward alone) of one layer, 128 -> 8 heads x 16, on a
   random graph with N=20,000 nodes and E=200,000 edges; PyG's layer and ours hold the
   same weights (``GATConv.from_pyg``); medians of interleaved runs; ratio = PyG / ours.
2. Peak memory of forward+backward (resident-set high-water mark above the start).
3. Scaling to N=200,000 / E=2,000,000.
4. Accuracy: the paper's 2-layer GAT trained with our layer and with PyG's layer on the
   same data and seeds: test accuracy mean ± std.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv as PygGATConv
from torch_geometric.nn import GATv2Conv as PygGATv2Conv

from attnlab.attention import GATConv
from attnlab.data.graphs import karate_club, stochastic_block_model
from attnlab.training.rng import set_seed
from benchmarks.common import Comparison, compare, machine_line, peak_extra_memory_mib, print_table


def random_graph(num_nodes: int, num_edges: int, features: int = 128):
    g = torch.Generator().manual_seed(0)
    return torch.randn(num_nodes, features, generator=g), torch.randint(0, num_nodes, (2, num_edges), generator=g)


def forward_backward(layer: nn.Module, x: torch.Tensor, edge_index: torch.Tensor):
    def step():
        layer.zero_grad(set_to_none=True)
        layer(x, edge_index).sum().backward()

    return step


def forward_only(layer: nn.Module, x: torch.Tensor, edge_index: torch.Tensor):
    def step():
        with torch.no_grad():
            layer(x, edge_index)

    return step


def layer_pairs(large: bool):
    """(label, PyG layer, attnlab layer with the same weights); at 2M edges GAT only (GATv2 needs >10 GB)."""
    peers = (("GAT", PygGATConv),) if large else (("GAT", PygGATConv), ("GATv2", PygGATv2Conv))
    for label, peer_cls in peers:
        torch.manual_seed(0)
        pyg = peer_cls(128, 16, heads=8)
        yield label, pyg, GATConv.from_pyg(pyg)


def gat_comparison(repeats: int, num_nodes: int = 20_000, num_edges: int = 200_000) -> Comparison:
    """GATConv 128 -> 8 heads x 16 forward + backward: PyG vs attnlab (same weights)."""
    x, edge_index = random_graph(num_nodes, num_edges)
    _, pyg, ours = next(layer_pairs(large=True))  # GAT only
    return compare(f"GATConv fwd+bwd N={num_nodes:,} E={num_edges:,}", forward_backward(pyg, x, edge_index),
                   forward_backward(ours, x, edge_index), repeats=repeats, warmup=1)


def speed_rows(num_nodes: int, num_edges: int, repeats: int, large: bool = False) -> list[list[object]]:
    x, edge_index = random_graph(num_nodes, num_edges)
    rows = []
    for label, pyg, ours in layer_pairs(large):
        modes = [("fwd+bwd", forward_backward)] + ([] if large else [("fwd", forward_only)])
        for mode, make in modes:
            result = compare(f"{label} {mode}", make(pyg, x, edge_index), make(ours, x, edge_index), repeats=repeats, warmup=1)
            rows.append([f"{label} {mode} (ms)", f"N={num_nodes:,} E={num_edges:,}", result.peer_s * 1e3, result.ours_s * 1e3, f"{result.ratio:.2f}x"])
    return rows


def memory_rows(num_nodes: int, num_edges: int, large: bool = False) -> list[list[object]]:
    """Peak memory of forward+backward. For exact figures run with MALLOC_MMAP_THRESHOLD_=65536:
    glibc otherwise keeps freed blocks under its adaptive mmap threshold in the heap,
    hiding them from peak RSS (but the fixed threshold slows the timed runs: measure apart)."""
    x, edge_index = random_graph(num_nodes, num_edges)
    rows = []
    for label, pyg, ours in layer_pairs(large):
        peer_mib = peak_extra_memory_mib(forward_backward(pyg, x, edge_index))
        our_mib = peak_extra_memory_mib(forward_backward(ours, x, edge_index))
        rows.append([f"{label} fwd+bwd peak MiB", f"N={num_nodes:,} E={num_edges:,}", peer_mib, our_mib, f"{peer_mib / our_mib:.2f}x less"])
    return rows


class PygGAT(nn.Module):
    """The paper's GAT from PyG layers, mirroring attnlab's GAT (same init scheme, glorot)."""

    def __init__(self, config):
        super().__init__()
        self.dropout = config.dropout
        self.conv1 = PygGATConv(config.in_dim, config.hidden_dim, config.heads, dropout=config.dropout)
        self.conv2 = PygGATConv(config.hidden_dim * config.heads, config.num_classes, 1, dropout=config.dropout)

    def forward(self, x, edge_index):
        x = F.elu(self.conv1(F.dropout(x, self.dropout, self.training), edge_index))
        from attnlab.models.gat import NodeClassifierOutput

        return NodeClassifierOutput(self.conv2(F.dropout(x, self.dropout, self.training), edge_index))


def train_seeds(cls, config, data, seeds: int, epochs: int) -> tuple[list[float], float]:
    """Test accuracies over seeds and seconds per run. (The accuracy table needs the
    node-classifier fit of the models before the move of GAT onto the one Trainer:
    imported here, so that the speed tables run without it.)"""
    from attnlab.models.gat import FitConfig, fit_node_classifier

    accs, start = [], time.perf_counter()
    for seed in range(seeds):
        set_seed(seed)
        model = cls(config)
        logits = lambda m=model: m(data.x, data.edge_index).logits  # noqa: E731
        accs.append(fit_node_classifier(model, logits, data, FitConfig(epochs=epochs, progress=False)).test_acc)
    return accs, (time.perf_counter() - start) / seeds


def accuracy_rows(seeds: int, epochs: int) -> list[list[object]]:
    from attnlab.models.gat import GAT, GATConfig

    rows = []
    for data in (karate_club(), stochastic_block_model(homophily=0.8), stochastic_block_model(homophily=0.2)):
        config = GATConfig(data.x.size(1), data.num_classes)
        row = [data.name]
        for cls in (PygGAT, GAT):
            accs, seconds = train_seeds(cls, config, data, seeds, epochs)
            row += [f"{statistics.fmean(accs):.3f} ± {statistics.stdev(accs):.3f}", seconds]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller graphs, fewer repeats")
    parser.add_argument("--no-speed", action="store_true", help="skip the N=20k / E=200k table")
    parser.add_argument("--no-large", action="store_true", help="skip the N=200k / E=2M scaling row")
    parser.add_argument("--no-train", action="store_true", help="skip the accuracy comparison")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_line() + "\n")
    header = ["layer / measure", "graph", "PyG", "attnlab", "PyG / attnlab"]
    size = (2_000, 20_000) if args.quick else (20_000, 200_000)
    large = not args.no_large and not args.quick
    if not args.no_speed:
        print_table("GATConv 128 -> 8 heads x 16, time (ms)", header, speed_rows(*size, repeats=3 if args.quick else 7))
    if large:
        print_table("Scaling: N=200k, E=2M, time (ms)", header, speed_rows(200_000, 2_000_000, repeats=3, large=True))
    if not args.no_train:
        seeds, epochs = (2, 30) if args.quick else (5, 200)
        train_header = ["data", "PyG GATConv test acc", "s / run", "attnlab GATConv test acc", "s / run"]
        print_table(f"2-layer GAT (8x8 heads, dropout 0.6), {seeds} seeds, {epochs} epochs", train_header, accuracy_rows(seeds, epochs))
    rows = (memory_rows(*size) if not args.no_speed else []) + (memory_rows(200_000, 2_000_000, large=True) if large else [])
    if rows:
        print_table("Peak memory of forward+backward (MiB)", header, rows)


if __name__ == "__main__":
    main()
