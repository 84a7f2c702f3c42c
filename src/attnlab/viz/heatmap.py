"""Attention heatmaps: one query per row, one key per column, tokens on the axes.

Any attention matrix ``weights (Lq, Lk)`` can be drawn: cross-attention of a
translator (target words down, source words across), BERT self-attention, an RNN
decoder's alignment. :func:`head_grid` draws every head of a layer side by side.
Gold links (e.g. word alignments) can be outlined on top, to compare what the model
attends to with what it should align to.

Figures use matplotlib's non-interactive Agg backend (no display needed);
:func:`figure_png` turns a figure into PNG bytes and closes it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from torch import Tensor  # noqa: E402

from attnlab.errors import AttnlabError  # noqa: E402
from attnlab.viz.fonts import fit_fonts, fonts_for  # noqa: E402

CELL_INCHES = 0.32


def _check(weights: Tensor, dims: int, name: str = "weights") -> None:
    if weights.dim() != dims:
        raise AttnlabError(f"{name}: expected {dims} dimensions, got shape {tuple(weights.shape)}")


def draw_heatmap(
    ax,
    weights: Tensor,
    key_labels: Sequence[str],
    query_labels: Sequence[str],
    *,
    title: str | None = None,
    gold: Iterable[tuple[int, int]] = (),
) -> None:
    """Draw ``weights (Lq, Lk)`` on ``ax``; ``gold`` holds ``(key, query)`` cells to outline."""
    _check(weights, 2)
    lq, lk = weights.shape
    if len(key_labels) != lk or len(query_labels) != lq:
        raise AttnlabError(
            f"labels: {len(query_labels)} query and {len(key_labels)} key labels for weights of shape {(lq, lk)}"
        )
    if title:
        ax.set_title(title, fontsize=9)
    if weights.numel() == 0:  # e.g. an empty translation
        ax.text(0.5, 0.5, "(no tokens)", ha="center", va="center")
        ax.axis("off")
        return
    ax.imshow(weights.detach().float().cpu().numpy(), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(lk), labels=list(key_labels), rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(lq), labels=list(query_labels), fontsize=8)
    fit_fonts([ax.title, *ax.get_xticklabels(), *ax.get_yticklabels()])  # Chinese labels: a font that has them
    for key, query in gold:
        ax.add_patch(Rectangle((key - 0.5, query - 0.5), 1, 1, fill=False, edgecolor="crimson", linewidth=1.2))


def attention_heatmap(
    weights: Tensor,
    key_labels: Sequence[str],
    query_labels: Sequence[str],
    *,
    title: str | None = None,
    gold: Iterable[tuple[int, int]] = (),
) -> Figure:
    """One heatmap ``weights (Lq, Lk)`` in a figure sized to its tokens."""
    lq, lk = weights.shape[-2:]
    fig, ax = plt.subplots(figsize=(max(3.0, 1.5 + CELL_INCHES * lk), max(2.5, 1.2 + CELL_INCHES * lq)))
    draw_heatmap(ax, weights, key_labels, query_labels, title=title, gold=gold)
    fig.tight_layout()
    return fig


def head_grid(
    weights: Tensor,
    key_labels: Sequence[str],
    query_labels: Sequence[str],
    *,
    titles: Sequence[str] | None = None,
    columns: int = 4,
) -> Figure:
    """Every head of a layer, ``weights (H, Lq, Lk)``, in a grid of ``columns`` columns."""
    _check(weights, 3)
    heads, lq, lk = weights.shape
    columns = min(columns, heads)
    rows = -(-heads // columns)
    size = (columns * max(2.5, 1.2 + CELL_INCHES * lk), rows * max(2.2, 1.0 + CELL_INCHES * lq))
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        title = titles[h] if titles is not None else f"head {h}"
        draw_heatmap(ax, weights[h], key_labels, query_labels, title=title)
    fig.tight_layout()
    return fig


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; the figure is closed (its memory freed). The texts keep the
    fonts they were made with (:func:`draw_heatmap` gives Chinese labels a font that has
    them); characters no installed font has are reported once, not once a glyph."""
    buffer = io.BytesIO()
    try:
        with fonts_for(text.get_text() for text in fig.findobj(Text)):
            fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buffer.getvalue()
