"""Graphs for node classification, all offline: karate club, a stochastic block model,
a generated academic heterogeneous graph (for HAN), and the user's own CSV files.

* Zachary's **karate club** (bundled with networkx): 34 members, 78 friendships, the two
  factions after the club split as labels; semi-supervised with a few labelled members.
* A **stochastic block model** (SBM): K communities; each edge stays inside its
  community with probability ``homophily``. Features are a noisy class centroid, so a
  model that averages over neighbours denoises them when homophily is high and mixes
  classes when it is low — you see when attention over neighbours can help.
* An **academic graph** (authors–papers–venues, as in HAN's DBLP experiment): authors
  are labelled by research area; the meta-paths author–paper–author (co-authors) and
  author–paper–venue–paper–author (same venue) become two author graphs.
* **CSV**: ``edges.csv`` with columns ``source,target``; ``nodes.csv`` with ``id``,
  optional ``label`` (empty = unlabelled) and ``split`` (train/val/test), and any
  number of numeric feature columns (none: one-hot node identity).

Shapes: x (N, F) float, edge_index (2, E) long (row 0 source, row 1 target; undirected
graphs hold both directions), y (N,) long with -1 for unlabelled, masks (N,) bool.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.validation import read_text


@dataclass
class GraphData:
    """A node-classification graph with train/val/test masks."""

    x: Tensor
    edge_index: Tensor
    y: Tensor
    train_mask: Tensor
    val_mask: Tensor
    test_mask: Tensor
    class_names: list[str]
    node_names: list[str] = field(default_factory=list)
    name: str = "graph"

    @property
    def num_nodes(self) -> int:
        return self.x.size(0)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> str:
        return (
            f"{self.name}: {self.num_nodes} nodes, {self.edge_index.size(1)} edges, "
            f"{self.x.size(1)} features, {self.num_classes} classes, "
            f"train/val/test {int(self.train_mask.sum())}/{int(self.val_mask.sum())}/{int(self.test_mask.sum())}"
        )


@dataclass
class HeteroGraphData(GraphData):
    """Target-type nodes with one homogeneous graph per meta-path (``edge_index`` = the first)."""

    metapaths: dict[str, Tensor] = field(default_factory=dict)


def split_masks(
    y: Tensor, per_class: int, num_val: int, generator: torch.Generator, labelled: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``per_class`` training nodes of each class, ``num_val`` validation nodes, the rest test.

    Small graphs keep a test set: at most half of a class trains, at most half the rest validates.
    """
    labelled = (y >= 0) if labelled is None else labelled
    order = torch.randperm(y.numel(), generator=generator)
    order = order[labelled[order]]
    train = torch.zeros_like(labelled)
    for c in y[labelled].unique():
        members = order[y[order] == c]
        train[members[: min(per_class, max(1, members.numel() // 2))]] = True
    rest = order[~train[order]]
    val = torch.zeros_like(train)
    val[rest[: min(num_val, rest.numel() // 2)]] = True
    test = labelled & ~train & ~val
    return train, val, test


def undirected(edges: Tensor, num_nodes: int) -> Tensor:
    """Both directions of every edge, without self-loops or duplicates: (2, E) -> (2, E')."""
    both = torch.cat([edges, edges.flip(0)], dim=1)
    both = both[:, both[0] != both[1]]
    keys = torch.unique(both[0] * num_nodes + both[1])
    return torch.stack([keys // num_nodes, keys % num_nodes])


def karate_club(train_per_class: int = 2, num_val: int = 6, seed: int = 0) -> GraphData:
    """Zachary's karate club: the two factions ("Mr. Hi" / "Officer"), one-hot node features."""
    import networkx as nx

    graph = nx.karate_club_graph()
    n = graph.number_of_nodes()
    class_names = ["Mr. Hi", "Officer"]
    y = torch.tensor([class_names.index(graph.nodes[i]["club"]) for i in range(n)])
    edge_index = undirected(torch.tensor(list(graph.edges()), dtype=torch.long).t(), n)
    generator = torch.Generator().manual_seed(seed)
    masks = split_masks(y, train_per_class, num_val, generator)
    return GraphData(torch.eye(n), edge_index, y, *masks, class_names, [str(i) for i in range(n)], "karate club")


def stochastic_block_model(
    num_nodes: int = 600,
    num_classes: int = 3,
    avg_degree: float = 10.0,
    homophily: float = 0.8,
    feature_dim: int = 32,
    feature_signal: float = 0.3,
    train_per_class: int = 20,
    num_val: int = 100,
    seed: int = 0,
) -> GraphData:
    """A K-community graph: an edge stays in its community with probability ``homophily``.

    Features: ``feature_signal * centroid[y] + N(0, I)`` — weak enough alone that the
    neighbours matter.
    """
    if not 0.0 <= homophily <= 1.0:
        raise AttnlabError(f"homophily must be in [0, 1], got {homophily}")
    if num_classes < 2 or num_nodes < num_classes * (train_per_class + 1):
        raise AttnlabError(f"need num_classes >= 2 and num_nodes >= num_classes*(train_per_class+1), got {num_classes}, {num_nodes}")
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_nodes) % num_classes
    y = y[torch.randperm(num_nodes, generator=g)]
    members = [torch.nonzero(y == c).flatten() for c in range(num_classes)]
    num_edges = int(num_nodes * avg_degree / 2)
    src = torch.randint(0, num_nodes, (num_edges,), generator=g)
    same = torch.rand(num_edges, generator=g) < homophily
    shift = torch.randint(1, num_classes, (num_edges,), generator=g)
    target_class = torch.where(same, y[src], (y[src] + shift) % num_classes)  # another class otherwise
    dst = torch.empty_like(src)
    for c in range(num_classes):  # a loop over classes, not nodes
        chosen = target_class == c
        dst[chosen] = members[c][torch.randint(0, members[c].numel(), (int(chosen.sum()),), generator=g)]
    edge_index = undirected(torch.stack([src, dst]), num_nodes)
    centroids = torch.randn(num_classes, feature_dim, generator=g)
    x = feature_signal * centroids[y] + torch.randn(num_nodes, feature_dim, generator=g)
    masks = split_masks(y, train_per_class, num_val, g)
    names = [f"class {c}" for c in range(num_classes)]
    return GraphData(x, edge_index, y, *masks, names, name=f"SBM (homophily {homophily:g})")


def academic_graph(
    num_authors: int = 400,
    num_papers: int = 1000,
    num_venues: int = 12,
    num_areas: int = 4,
    on_topic: float = 0.8,
    feature_dim: int = 48,
    feature_signal: float = 0.3,
    max_neighbours: int = 16,
    train_per_class: int = 20,
    num_val: int = 80,
    seed: int = 0,
) -> HeteroGraphData:
    """Authors–papers–venues with authors labelled by area; meta-paths APA and APVPA.

    Each paper has an area, a venue of its area (with probability ``on_topic``) and 1–3
    authors, mostly of its area. Author features are noisy area "keywords". Each author
    keeps at most ``max_neighbours`` sampled neighbours per meta-path.
    """
    if num_venues < num_areas:
        raise AttnlabError(f"num_venues ({num_venues}) must be at least num_areas ({num_areas})")
    g = torch.Generator().manual_seed(seed)
    author_area = torch.randint(0, num_areas, (num_authors,), generator=g)
    venue_area = torch.arange(num_venues) % num_areas
    paper_area = torch.randint(0, num_areas, (num_papers,), generator=g)
    venue = _pick_by_area(venue_area, paper_area, on_topic, g)
    writes = [_pick_by_area(author_area, paper_area, on_topic, g) for _ in range(3)]
    keep = [torch.ones(num_papers, dtype=torch.bool)] + [torch.rand(num_papers, generator=g) < 0.5 for _ in range(2)]
    author = torch.cat([w[k] for w, k in zip(writes, keep)])  # (number of authorships,)
    paper = torch.cat([torch.arange(num_papers)[k] for k in keep])
    metapaths = {
        "author-paper-author": _through(author, paper, num_authors, max_neighbours, g),
        "author-paper-venue-paper-author": _through(author, venue[paper], num_authors, max_neighbours, g),
    }
    centroids = torch.randn(num_areas, feature_dim, generator=g)
    x = feature_signal * centroids[author_area] + torch.randn(num_authors, feature_dim, generator=g)
    masks = split_masks(author_area, train_per_class, num_val, g)
    names = [f"area {a}" for a in range(num_areas)]
    first = next(iter(metapaths.values()))
    return HeteroGraphData(x, first, author_area, *masks, names, name="academic graph", metapaths=metapaths)


def _pick_by_area(candidate_area: Tensor, wanted_area: Tensor, on_topic: float, g: torch.Generator) -> Tensor:
    """For each wanted area: a random candidate of that area (prob. on_topic) or of any area."""
    picks = torch.randint(0, candidate_area.numel(), (wanted_area.numel(),), generator=g)
    for area in range(int(candidate_area.max()) + 1):
        pool = torch.nonzero(candidate_area == area).flatten()
        chosen = (wanted_area == area) & (torch.rand(wanted_area.numel(), generator=g) < on_topic)
        picks[chosen] = pool[torch.randint(0, pool.numel(), (int(chosen.sum()),), generator=g)]
    return picks


def _through(author: Tensor, middle: Tensor, num_authors: int, max_neighbours: int, g: torch.Generator) -> Tensor:
    """Authors that share a ``middle`` node (a paper or a venue): the meta-path graph.

    Each author keeps at most ``max_neighbours`` random meta-path neighbours (neighbour
    sampling: author-venue-author is otherwise close to a complete graph).
    """
    incidence = torch.zeros(num_authors, int(middle.max()) + 1)
    incidence[author, middle] = 1.0
    linked = (incidence @ incidence.t() > 0) & ~torch.eye(num_authors, dtype=torch.bool)  # (A, A)
    scores = torch.rand(num_authors, num_authors, generator=g).masked_fill(~linked, -1.0)
    top, neighbour = scores.topk(min(max_neighbours, num_authors), dim=1)  # (A, k)
    node = torch.arange(num_authors).unsqueeze(1).expand_as(neighbour)
    keep = top >= 0
    return torch.stack([neighbour[keep], node[keep]])  # (2, E): neighbour -> author


def load_csv_graph(
    edges_path: str | Path, nodes_path: str | Path, train_per_class: int = 20, num_val: int = 50, seed: int = 0
) -> GraphData:
    """Read ``edges.csv`` (source,target) and ``nodes.csv`` (id[,label][,split],features…)."""
    rows = _read_csv(nodes_path, required=("id",))
    ids = [row["id"] for row in rows]
    index = {name: i for i, name in enumerate(ids)}
    if len(index) != len(ids):
        raise AttnlabError(f"{nodes_path}: node ids in column 'id' must be unique")
    labels = [row.get("label", "") or "" for row in rows]
    class_names = sorted({label for label in labels if label})
    if len(class_names) < 2:
        raise AttnlabError(f"{nodes_path}: column 'label' must hold at least two classes")
    y = torch.tensor([class_names.index(label) if label else -1 for label in labels])
    x = _features(rows, nodes_path)
    edges = []
    for line, row in enumerate(_read_csv(edges_path, required=("source", "target")), start=2):
        for end in ("source", "target"):
            if row[end] not in index:
                raise AttnlabError(f"{edges_path}:{line}: {end} {row[end]!r} is not an id in {nodes_path}")
        edges.append((index[row["source"]], index[row["target"]]))
    edge_index = undirected(torch.tensor(edges, dtype=torch.long).reshape(-1, 2).t(), len(ids))
    masks = _csv_masks(rows, y, train_per_class, num_val, seed, nodes_path)
    return GraphData(x, edge_index, y, *masks, class_names, ids, Path(nodes_path).stem)


def _read_csv(path: str | Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    text = read_text(path, strict=True)  # UTF-8, no NUL bytes; errors name the line
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise AttnlabError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
    rows = []
    for row in reader:
        if None in row:  # DictReader's key for fields past the header
            raise AttnlabError(f"{path}:{reader.line_num}: more fields than the header's {len(reader.fieldnames)}")
        rows.append({k: (v or "").strip() for k, v in row.items()})
    if not rows:
        raise AttnlabError(f"{path}: no rows after the header")
    return rows


def _features(rows: list[dict[str, str]], path: str | Path) -> Tensor:
    columns = [c for c in rows[0] if c not in ("id", "label", "split")] if rows else []
    if not columns:
        return torch.eye(len(rows))
    try:
        x = torch.tensor([[float(row[c]) for c in columns] for row in rows])
    except ValueError as e:
        raise AttnlabError(f"{path}: feature columns {columns} must be numbers ({e})") from None
    bad = (~torch.isfinite(x)).nonzero()
    if len(bad):
        r, c = (int(v) for v in bad[0])
        raise AttnlabError(f"{path}: node {rows[r]['id']!r}, column {columns[c]!r}: {rows[r][columns[c]]!r}; "
                           "expected a finite number")
    return x


def _csv_masks(rows, y: Tensor, per_class: int, num_val: int, seed: int, path) -> tuple[Tensor, Tensor, Tensor]:
    splits = [row.get("split", "") for row in rows]
    if not any(splits):
        return split_masks(y, per_class, num_val, torch.Generator().manual_seed(seed))
    unknown = sorted({s for s in splits if s not in ("", "train", "val", "test")})
    if unknown:
        raise AttnlabError(f"{path}: column 'split' must be train/val/test or empty, got {unknown}")
    return tuple(torch.tensor([s == name for s in splits]) & (y >= 0) for name in ("train", "val", "test"))
