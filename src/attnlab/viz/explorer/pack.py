"""Pack :class:`~attnlab.attention.maps.Explained` objects into the explorer's compact payload.

Every batch element of every ``Explained`` becomes one *example*: a small JSON description
(labels, map names and shapes, per-head statistics, thumbnails, image, graph layout) plus
*blobs*, the attention itself, which the page decodes lazily, one head of one map at a time:

    token map  (H, Lq, Lk)  -> uint8 q = round(levels A / rowmax), one blob per head
                               + rowmax float32 (H, Lq) (deflate, base64)
                               A ~= q / levels * rowmax: the error is at most rowmax / (2 levels);
                               levels = 255 (8 bits) unless the page would pass its size
                               budget (:func:`choose_levels`)
    graph map  alpha (E, H) -> uint16 round(65535 alpha), edge_index (2, E) int32
    thumbnail  (H, T, T)    -> uint8 mean-pooled map scaled to its maximum (model view)

Per-row scaling keeps near-uniform rows of long inputs exact to 0.2 % where a global uint8
scale would round them all to zero. Blobs are deflated with run-length matching (the page inflates them with the
browser's own ``DecompressionStream``) and referred to by id.

Notation: B batch, H heads, Lq queries, Lk keys, E edges, N nodes, T thumbnail side.
"""

from __future__ import annotations

import base64
import io
import math
import zlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.attention.maps import Explained, GraphAttention
from attnlab.errors import AttnlabError
from attnlab.viz.explorer.stats import graph_statistics, head_statistics

THUMB = 48  # thumbnail side in cells (model view)
MAX_LAYOUT_NODES = 5000
LEVELS = (255, 63, 31, 15, 7, 3)  # 8, 6, 5, 4, 3, 2 bits per weight
LENGTHS = {"tokens": "lengths", "source": "src_lengths", "target": "tgt_lengths"}  # extras naming true lengths  # above this the graph is laid out on a circle instead of by forces


class Blobs:
    """The big base64 strings of a payload, by id (``"b0"``, ``"b1"``, ...)."""

    def __init__(self, prefix: str = "b") -> None:
        self.prefix = prefix
        self.items: dict[str, str] = {}

    def add(self, raw: bytes) -> str:
        key = f"{self.prefix}{len(self.items)}"
        self.items[key] = base64.b64encode(_deflate(raw)).decode("ascii")
        return key


def _deflate(raw: bytes) -> bytes:
    """Run-length deflate: as small as level 6 on attention (masked zeros, small weights), 5x faster."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    return packer.compress(raw) + packer.flush()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def quantize_rows(attn: Tensor, levels: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """``attn (H, Lq, Lk)`` -> ``q uint8 (H, Lq, Lk)`` in [0, levels], ``rowmax float32 (H, Lq)``."""
    a = torch.nan_to_num(attn.detach().float().cpu(), nan=0.0, posinf=0.0).clamp_min(0)  # NaN/inf drawn as 0
    rowmax = a.amax(-1)  # (H, Lq)
    q = torch.round(a * (levels / rowmax.clamp_min(1e-30))[..., None]).to(torch.uint8)
    return q.numpy(), rowmax.numpy().astype(np.float32)


def choose_levels(items: list[Explained], max_mb: float | None) -> int:
    """The finest row quantization (8, 6, 5, 4, 3 or 2 bits) whose attention blobs, projected
    from a sample of maps, keep the page under ``max_mb``; 255 (8 bits) when ``max_mb`` is None.

    Trained models' attention is sparse and deflates to little at 8 bits; dense noise (a
    random-init GPT-2 at 1,024 tokens: every weight within 5x of its row's maximum) costs ~7
    bits a weight, so only a coarser grid fits (docs/explorer.md).
    """
    maps = [(e.value, b) for ex in items for e in ex.attentions.entries() if not isinstance(e.value, GraphAttention)
            for b in range(e.value.shape[0])]
    cells = sum(v[b].numel() for v, b in maps)
    if max_mb is None or not cells:
        return 255
    budget = max_mb * 1e6 * 0.9 - 1e6  # room for labels, thumbnails, row scales and the page's code
    picks = sorted({round(k * (len(maps) - 1) / 2) for k in range(3)})  # first, middle and last map
    sample = [maps[k][0][maps[k][1], :4] for k in picks]  # at most 4 heads of each
    sample_cells = sum(x.numel() for x in sample)
    for levels in LEVELS:
        packed = sum(len(_deflate(quantize_rows(x, levels)[0].tobytes())) for x in sample)
        if packed / sample_cells * cells * 4 / 3 <= budget:
            return levels
    return LEVELS[-1]


def thumbnail(attn: Tensor) -> tuple[str, int, int]:
    """Mean-pooled ``attn (H, Lq, Lk)`` at most THUMB x THUMB, each row scaled to its max
    (the pattern, diagonal or previous-token or first-token, shows at any length)."""
    a = attn.detach().float().cpu()
    tq, tk = min(THUMB, a.shape[1]), min(THUMB, a.shape[2])
    pooled = F.adaptive_avg_pool2d(a[None], (tq, tk))[0]  # (H, tq, tk)
    pooled = pooled / pooled.amax(dim=2, keepdim=True).clamp_min(1e-30)
    return _b64(torch.round(pooled * 255).to(torch.uint8).numpy().tobytes()), tq, tk


def _graph_thumbnail(edge_index: Tensor, alpha: Tensor, n: int) -> tuple[str, int, int]:
    t = min(THUMB, n)
    dst = (edge_index[1].long() * t) // n
    src = (edge_index[0].long() * t) // n
    grid = torch.zeros(alpha.shape[1], t * t)
    grid.index_add_(1, dst * t + src, alpha.detach().float().cpu().T)
    grid = grid / grid.amax(-1, keepdim=True).clamp_min(1e-30)
    return _b64(torch.round(grid * 255).to(torch.uint8).numpy().tobytes()), t, t


def _layout(edge_index: Tensor, n: int) -> list[float]:
    """Node positions in [0, 1]^2, flattened (x0, y0, x1, y1, ...): spring layout (seeded)."""
    import networkx as nx

    if n > MAX_LAYOUT_NODES:
        angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
        pos = np.stack([np.cos(angle), np.sin(angle)], 1)
    else:
        graph = nx.Graph()
        graph.add_nodes_from(range(n))
        graph.add_edges_from((int(s), int(d)) for s, d in edge_index.T.tolist() if s != d)
        layout = nx.spring_layout(graph, seed=0, iterations=60 if n <= 1000 else 30)
        pos = np.array([layout[i] for i in range(n)])
    # each axis to [0, 1] (the page fills its width and height); on big graphs the 1st-99th
    # percentiles, so a few far-flung isolated nodes do not squeeze the rest into a corner
    lo, hi = (np.percentile(pos, [1, 99], axis=0) if n > 100 else (pos.min(0), pos.max(0)))
    pos = np.clip((pos - lo) / np.maximum(hi - lo, 1e-9), -0.02, 1.02)
    pos = (pos + 0.02) / 1.04
    return [round(float(v), 4) for v in pos.reshape(-1)]


def _png(image: Tensor) -> str:
    """``image (3, H, W)`` or ``(1, H, W)`` (grey) in [0, 1] -> a PNG data URL."""
    from PIL import Image

    image = image.detach().float().cpu()
    if image.dim() == 3 and image.shape[0] not in (1, 3):
        image = image[:3] if image.shape[0] > 3 else image.mean(0, keepdim=True)
    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    arr = arr[0].numpy() if arr.dim() == 2 or arr.shape[0] == 1 else arr.permute(1, 2, 0).numpy()  # grey or RGB
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + _b64(buf.getvalue())


def _token_map(value: Tensor, b: int, blobs: Blobs, levels: int, lq: int, lk: int) -> dict[str, Any]:
    attn = value[b, :, :lq, :lk]  # (H, Lq, Lk) without the batch's padding
    q, rowmax = quantize_rows(attn, levels)
    thumb, tq, tk = thumbnail(attn)
    h, lq, lk = attn.shape
    return {"heads": h, "lq": lq, "lk": lk, "levels": levels, "data": [blobs.add(q[k].tobytes()) for k in range(h)],
            "scale": blobs.add(rowmax.tobytes()), "thumb": thumb, "tq": tq, "tk": tk}


def _graph_map(value: GraphAttention, n: int, blobs: Blobs) -> dict[str, Any]:
    edge_index, alpha = value.edge_index.detach().cpu(), value.alpha.detach().float().cpu()
    if alpha.dim() == 1:
        alpha = alpha[:, None]
    if edge_index.dim() != 2 or edge_index.shape[0] != 2 or alpha.shape[0] != edge_index.shape[1]:
        raise AttnlabError(f"graph attention: edge_index (2, E) and alpha (E, H) expected, got "
                           f"{tuple(edge_index.shape)} and {tuple(alpha.shape)}")
    thumb, tq, tk = _graph_thumbnail(edge_index, alpha, n)
    q16 = torch.round(alpha.clamp(0, 1) * 65535).to(torch.int32).numpy().astype(np.uint16)
    return {"graph": True, "heads": alpha.shape[1], "lq": n, "lk": n, "edges": edge_index.shape[1],
            "edge_index": blobs.add(edge_index.to(torch.int32).numpy().astype("<i4").tobytes()),
            "alpha": blobs.add(q16.astype("<u2").tobytes()), "thumb": thumb, "tq": tq, "tk": tk}


def _num_elements(ex: Explained) -> int:
    sizes = {e.value.shape[0] for e in ex.attentions.entries() if not isinstance(e.value, GraphAttention)}
    if len(sizes) > 1:
        raise AttnlabError(f"Explained({ex.model_type}): maps disagree on the batch size: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def _rollout(ex: Explained, b: int, blobs: Blobs) -> dict[str, Any] | None:
    from attnlab.viz.rollout import attention_rollout

    square = [e.value[b : b + 1] for e in ex.attentions.entries()
              if e.kind == "self" and e.axes[0] == e.axes[1] == "patches"]
    if not square:
        return None
    q, rowmax = quantize_rows(attention_rollout(square))  # (1, L, L)
    return {"heads": 1, "lq": q.shape[1], "lk": q.shape[2], "data": [blobs.add(q[0].tobytes())],
            "scale": blobs.add(rowmax.tobytes())}


def pack_example(ex: Explained, b: int, blobs: Blobs, levels: int = 255) -> dict[str, Any]:
    """The JSON description of batch element ``b`` of ``ex``; its arrays go into ``blobs``."""
    extras = ex.extras
    labels = {axis: [str(t) for t in per[b if len(per) > b else 0]] for axis, per in ex.labels.items()}
    for axis, key in LENGTHS.items():  # the apps' true lengths of padded batch elements
        if axis in labels and extras.get(key) is not None and len(extras[key]) > b:
            labels[axis] = labels[axis][: int(extras[key][b])]
    special = set(map(str, extras.get("special", ())))
    grid = tuple(int(v) for v in extras["grid"]) if "grid" in extras else None
    gold = None
    if extras.get("gold") is not None and len(extras["gold"]) > b:
        gold = {(int(t), int(s)) for t, s in extras["gold"][b]}
    out: dict[str, Any] = {"model_type": ex.model_type, "labels": labels, "maps": [], "stats": []}
    graph_edges = None
    for e in ex.attentions.entries():
        entry = {"name": e.name, "kind": e.kind, "axes": list(e.axes)}
        if isinstance(e.value, GraphAttention):
            n = max(len(labels[e.axes[0]]), int(e.value.edge_index.max()) + 1 if e.value.edge_index.numel() else 0)
            for axis in set(e.axes):  # nodes without a label are named by their index
                labels[axis] = labels[axis] + [str(i) for i in range(len(labels[axis]), n)]
            entry.update(_graph_map(e.value, n, blobs))
            edges = e.value.edge_index.detach().cpu()  # the layout uses every map's edges (HAN: every meta-path)
            graph_edges = edges if graph_edges is None else torch.cat([graph_edges, edges], 1)
            stats = graph_statistics(e.value.edge_index, e.value.alpha.reshape(e.value.alpha.shape[0], -1), n)
        else:
            # a padded batch: each element keeps as many queries and keys as it has labels
            lq, lk = (min(n, len(labels[axis]) or n) for n, axis in zip(e.value.shape[2:], e.axes))
            entry.update(_token_map(e.value, b, blobs, levels, lq, lk))
            stats = head_statistics(
                e.value[b, :, :lq, :lk], same_axes=e.axes[0] == e.axes[1], key_labels=labels[e.axes[1]], special=special,
                grid=grid, gold=gold if e.kind == "cross" else None)
        out["maps"].append(entry)
        out["stats"].append({k: [None if v is None or not math.isfinite(v) else round(float(v), 5) for v in vals]
                             for k, vals in stats.items()})
    if graph_edges is not None:
        out["layout"] = _layout(graph_edges, len(labels[ex.attentions.entries()[0].axes[0]]))
    if isinstance(extras.get("image"), Tensor):
        out["image"] = _png(extras["image"][b])
    if grid is not None:
        out["grid"] = list(grid)
        rollout = _rollout(ex, b, blobs)
        if rollout is not None:
            out["rollout"] = rollout
    if gold is not None:
        out["gold"] = sorted(gold)
    if special:
        out["special"] = sorted(special)
    if extras.get("node_classes") is not None:
        out["node_classes"] = [int(c) for c in extras["node_classes"][b if len(extras["node_classes"]) > b else 0]]
    if extras.get("metapaths") is not None:
        out["metapaths"] = [str(m) for m in extras["metapaths"]]
    if extras.get("metapath_weights") is not None:
        out["metapath_weights"] = [float(w) for w in torch.as_tensor(extras["metapath_weights"]).reshape(-1)]
    predictions = extras.get("predictions")
    if predictions is not None and len(predictions) > b:
        if isinstance(predictions[b], str):
            out["prediction"] = predictions[b]  # a translation, a class
        elif isinstance(predictions[b], (list, tuple)):
            out["node_predictions"] = [str(p) for p in predictions[b]]  # one per node
    if extras.get("class_names") is not None:
        out["class_names"] = [str(c) for c in extras["class_names"]]
    return out


def pack_items(items: list[Explained], blobs: Blobs, levels: int = 255) -> list[dict[str, Any]]:
    """Every batch element of every item, in order; token maps on ``levels + 1`` grid steps per row."""
    if not items:
        raise AttnlabError("explorer: expected at least one Explained to show")
    for ex in items:
        if not len(ex.attentions):
            raise AttnlabError(f"explorer: Explained({ex.model_type!r}) has no attention maps (was need_weights=True?)")
    return [pack_example(ex, b, blobs, levels) for ex in items for b in range(_num_elements(ex))]
