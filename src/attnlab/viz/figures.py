"""One PNG for any model's attention: what ``attnlab viz`` draws from an :class:`Explained`.

    token models   a grid with a row per layer and a column per head, query labels down,
                   key labels across (translators: the cross-attention; GPT: causal
                   self-attention; BERT: self-attention), batch element 0
    ViT            the image, its attention rollout, and every head's class-token map
    GAT / HAN      the graph with edges drawn by the first layer's (meta-path's) attention

Notation: L layers, H heads, Lq queries, Lk keys.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from attnlab.attention.maps import Explained, GraphAttention  # noqa: E402
from attnlab.errors import AttnlabError  # noqa: E402
from attnlab.viz.fonts import fonts_for  # noqa: E402
from attnlab.viz.graph import draw_graph_attention  # noqa: E402
from attnlab.viz.heatmap import CELL_INCHES, draw_heatmap  # noqa: E402
from attnlab.viz.rollout import attention_figure, write_png  # noqa: E402

MAX_LABELS = 60  # a longer input is drawn on its first MAX_LABELS queries and keys


def token_maps(explained: Explained) -> list[tuple[str, Tensor, tuple[str, str]]]:
    """The maps a picture shows: cross-attention when there is any, else every map."""
    entries = [e for e in explained.attentions.entries() if not isinstance(e.value, GraphAttention)]
    cross = [e for e in entries if e.kind == "cross"]
    return [(e.name, e.value, e.axes) for e in (cross or entries)]


LENGTHS = {"source": "src_lengths", "target": "tgt_lengths", "tokens": "lengths"}  # extras of padded batches


def _length(explained: Explained, axis: str) -> int:
    """Element 0's real length along ``axis`` (a padded batch's padding is not drawn)."""
    lengths = explained.extras.get(LENGTHS.get(axis, ""))
    return int(lengths[0]) if lengths else len(explained.labels[axis][0])


def layer_grid(explained: Explained, title: str = "") -> plt.Figure:
    """A row per map, a column per head; batch element 0."""
    maps = token_maps(explained)
    if not maps:
        raise AttnlabError(f"{explained.model_type}: no token attention to draw")
    heads = max(w.shape[1] for _, w, _ in maps)
    q_axis, k_axis = maps[0][2]
    queries = explained.labels[q_axis][0][: min(MAX_LABELS, _length(explained, q_axis))]
    keys = explained.labels[k_axis][0][: min(MAX_LABELS, _length(explained, k_axis))]
    width = max(2.4, 1.2 + CELL_INCHES * len(keys))
    height = max(2.2, 1.0 + CELL_INCHES * len(queries))
    fig, axes = plt.subplots(len(maps), heads, figsize=(heads * width, len(maps) * height), squeeze=False)
    for row, (name, weights, _) in enumerate(maps):
        for head in range(heads):
            ax = axes[row, head]
            if head >= weights.shape[1]:
                ax.axis("off")
                continue
            w = weights[0, head, : len(queries), : len(keys)].float().cpu()  # (Lq, Lk)
            draw_heatmap(ax, w, keys, queries, title=f"{name} head {head}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def draw_explained(explained: Explained, out: str | Path) -> Path:
    """Write the picture of ``explained`` to ``out`` (a ``.png`` file, or a folder for
    ``<model_type>_attention.png``); returns the file written. Labels in scripts the
    default font lacks (Chinese, ...) are drawn in an installed font that has them."""
    out = Path(out)
    path = out if out.suffix.lower() == ".png" else out / f"{explained.model_type}_attention.png"
    prediction = explained.extras.get("predictions", [None])[0]
    title = "" if prediction is None or isinstance(prediction, list) else f"predicted: {prediction}"
    with fonts_for(_texts(explained, title)):
        return _draw(explained, path, title)


def _texts(explained: Explained, title: str) -> list[str]:
    """Every text the picture of ``explained`` may show."""
    labels = [label for rows in explained.labels.values() for row in rows for label in row]
    return [*labels, title, *map(str, explained.extras.get("class_names") or ())]


def _draw(explained: Explained, path: Path, title: str) -> Path:
    graph_maps = [e for e in explained.attentions.entries() if isinstance(e.value, GraphAttention)]
    if graph_maps:
        first = graph_maps[0]
        labels = explained.labels[first.axes[0]][0]
        classes = explained.extras.get("node_classes", [None])[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_graph_attention(
            first.value.edge_index, first.value.alpha, len(labels),
            torch.tensor(classes) if classes is not None else None, labels,
            explained.extras.get("class_names"), path=path, title=f"{explained.model_type}: {first.name} attention",
        )
        return path
    if "image" in explained.extras:
        maps = [w[:1] for _, w, _ in token_maps(explained)]
        return write_png(attention_figure(explained.extras["image"][0] * 2 - 1, maps, title), path)
    return write_png(layer_grid(explained, title), path)
