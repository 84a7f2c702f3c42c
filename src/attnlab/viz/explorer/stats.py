"""Per-head statistics of attention maps: what makes a head "diagonal", "previous-token",
"aligning" or "looking at [SEP]".

For one example, one map ``A (H, Lq, Lk)`` (rows are distributions, or all zero for a query
that may attend to nothing) and every head::

    entropy   mean over live rows of  -sum_j A_ij log A_ij           (nats)
    distance  mean over live rows of   sum_j A_ij d(i, j)           d: |i - j| for tokens; the
              Euclidean patch distance for ViT patches ([CLS] at 0 is skipped); for cross
              attention the distance to the diagonal |j - i (Lk-1)/(Lq-1)|
    self      mean of A_ii  (same axes only)          prev   mean of A_i,i-1 (same axes only)
    special   mean over live rows of the weight on special labels ([CLS], [SEP], BOS, punctuation)
    aer       alignment error rate of the argmax alignment against the gold links (translators)

Notation: H heads, Lq queries, Lk keys, E edges.
"""

from __future__ import annotations

import string

import torch
from torch import Tensor

SPECIAL = {"[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "<s>", "</s>", "<pad>", "<bos>", "<eos>",
           "<unk>", "<|endoftext|>", "BOS", "EOS", "<BOS>", "<EOS>", "[BOS]", "[EOS]"}
COLUMNS = ("entropy", "distance", "self", "prev", "special", "aer")


def is_special(label: str, extra: set[str] | frozenset[str] = frozenset()) -> bool:
    """A special token or a label made only of punctuation."""
    text = label.strip()
    return label in extra or text in SPECIAL or (bool(text) and all(c in string.punctuation for c in text))


def _distances(lq: int, lk: int, same_axes: bool, grid: tuple[int, int] | None) -> Tensor:
    """``d (Lq, Lk)``: how far key j is from query i (see the module docstring)."""
    i = torch.arange(lq, dtype=torch.float32)[:, None]
    j = torch.arange(lk, dtype=torch.float32)[None, :]
    if grid is not None and same_axes and lq == lk == 1 + grid[0] * grid[1]:
        cols = grid[1]
        pos = torch.arange(lq - 1)
        yx = torch.stack([pos // cols, pos % cols], dim=1).float()  # (N, 2)
        d = torch.zeros(lq, lk)
        d[1:, 1:] = torch.cdist(yx, yx)
        return d
    if same_axes:
        return (i - j).abs()
    return (j - i * (lk - 1) / max(lq - 1, 1)).abs()


def head_statistics(
    attn: Tensor,
    *,
    same_axes: bool,
    key_labels: list[str],
    special: set[str] | frozenset[str] = frozenset(),
    grid: tuple[int, int] | None = None,
    gold: set[tuple[int, int]] | None = None,
) -> dict[str, list[float | None]]:
    """Statistics of ``attn (H, Lq, Lk)`` per head: ``{column: [value or None per head]}``."""
    a = attn.detach().float().cpu()
    h, lq, lk = a.shape
    live = a.sum(-1) > 0  # (H, Lq): queries that attend to something
    count = live.sum(-1).clamp_min(1).float()  # (H,)

    def row_mean(x: Tensor) -> list[float]:  # x (H, Lq) -> mean over live rows, per head
        return ((x * live).sum(-1) / count).tolist()

    out: dict[str, list[float | None]] = {}
    out["entropy"] = row_mean(-(a * a.clamp_min(1e-12).log()).sum(-1))
    out["distance"] = row_mean((a * _distances(lq, lk, same_axes, grid)).sum(-1))
    if same_axes and lq == lk:
        out["self"] = row_mean(a.diagonal(dim1=1, dim2=2))
        prev = torch.zeros(h, lq)
        prev[:, 1:] = a.diagonal(offset=-1, dim1=1, dim2=2)
        out["prev"] = row_mean(prev)
    else:
        out["self"] = out["prev"] = [None] * h
    flags = torch.tensor([is_special(t, special) for t in key_labels[:lk]] + [False] * (lk - len(key_labels)))
    out["special"] = row_mean((a * flags).sum(-1)) if flags.any() else [None] * h
    out["aer"] = [None] * h
    if gold:
        gold = {(int(t), int(s)) for t, s in gold}
        for head in range(h):
            links = {(t, int(a[head, t].argmax())) for t in range(lq) if live[head, t]}
            total = len(links) + len(gold)
            out["aer"][head] = 1 - 2 * len(links & gold) / total if total else 0.0
    return out


def graph_statistics(edge_index: Tensor, alpha: Tensor, num_nodes: int) -> dict[str, list[float | None]]:
    """Statistics of graph attention ``alpha (E, H)`` over ``edge_index (2, E)`` per head:
    the mean entropy of each target node's distribution and its weight on itself."""
    dst = edge_index[1].long()
    src = edge_index[0].long()
    a = alpha.detach().float().cpu()
    e, h = a.shape
    ent = torch.zeros(num_nodes, h).index_add_(0, dst, -(a * a.clamp_min(1e-12).log()))
    has = torch.zeros(num_nodes).index_add_(0, dst, torch.ones(e)) > 0
    n = has.sum().clamp_min(1).float()
    own = torch.zeros(num_nodes, h).index_add_(0, dst, a * (src == dst).float()[:, None])
    out: dict[str, list[float | None]] = {c: [None] * h for c in COLUMNS}
    out["entropy"] = ((ent * has[:, None]).sum(0) / n).tolist()
    out["self"] = ((own * has[:, None]).sum(0) / n).tolist()
    return out
