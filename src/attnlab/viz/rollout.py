"""Attention rollout (Abnar & Zuidema 2020) and the pictures of encoder attention.

Attention weights of one layer say how much each token mixes in of the others, but
through the residual connections every token also keeps itself, and layers compose.
Rollout follows the information from the input up through all layers:

    Â_l = 0.5 A_l + 0.5 I                 A_l: heads fused (mean, max or min), (L, L)
    Â_l = Â_l / rowsum(Â_l)               rows stay distributions
    R   = Â_N Â_{N-1} ... Â_1            (L, L): how much output token i draws on input j

For a ViT, row 0 of R (the class token) over the N patches, reshaped to the h x w grid
and upsampled, is drawn over the image. :func:`layer_head_grid` draws every head of
every layer (one row per layer), with tokens on the axes for text.

Notation: B batch, H heads, L tokens (1 + N for a ViT), h x w patch grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402

from attnlab.errors import AttnlabError  # noqa: E402
from attnlab.io import atomic_write  # noqa: E402
from attnlab.viz.heatmap import CELL_INCHES, draw_heatmap, figure_png  # noqa: E402

FUSIONS = ("mean", "max", "min")


def attention_rollout(attentions: Sequence[Tensor], head_fusion: str = "mean", residual: float = 0.5) -> Tensor:
    """Rollout of per-layer weights ``(B, H, L, L)`` (first layer first) -> ``(B, L, L)``.

    ``residual`` is the weight of the identity added for the skip connection (0.5 in the paper).
    """
    if not attentions:
        raise AttnlabError("attentions: expected the weights of at least one layer")
    if head_fusion not in FUSIONS:
        raise AttnlabError(f"head_fusion: expected one of {FUSIONS}, got {head_fusion!r}")
    if not 0 <= residual <= 1:
        raise AttnlabError(f"residual: expected a weight in [0, 1], got {residual}")
    rollout = None
    for layer, weights in enumerate(attentions):
        if weights.dim() != 4 or weights.shape[-1] != weights.shape[-2]:
            raise AttnlabError(f"attentions[{layer}]: expected shape (B, H, L, L), got {tuple(weights.shape)}")
        fused = getattr(weights.float(), head_fusion)(dim=1)  # (B, L, L)
        fused = fused.values if head_fusion != "mean" else fused
        eye = torch.eye(fused.shape[-1], device=fused.device)
        mixed = (1 - residual) * fused + residual * eye
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed if rollout is None else mixed @ rollout  # later layers on the left
    return rollout


def class_token_map(rollout: Tensor, grid: tuple[int, int]) -> Tensor:
    """Row 0 (class token) of ``rollout (B, 1 + h w, 1 + h w)`` over the patches, ``(B, h, w)``,
    scaled to a maximum of 1."""
    h, w = grid
    if rollout.shape[-1] != 1 + h * w:
        raise AttnlabError(f"rollout: {rollout.shape[-1]} tokens do not fit a class token + {h}x{w} patch grid")
    patches = rollout[:, 0, 1:].reshape(-1, h, w)  # (B, h, w)
    return patches / patches.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def _grid(num_patches: int, height: int, width: int) -> tuple[int, int]:
    """The h x w patch grid of ``num_patches`` square patches over a height x width image."""
    h = max(1, round((num_patches * height / width) ** 0.5))
    if num_patches % h:
        raise AttnlabError(f"{num_patches} patches do not tile a {height}x{width} image")
    return h, num_patches // h


def _show_image(ax, pixels: Tensor, title: str, cmap: str = "gray") -> None:
    ax.imshow(pixels.numpy(), cmap=cmap if pixels.dim() == 2 else None, vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def attention_figure(image: Tensor, attentions: Sequence[Tensor], title: str = "") -> Figure:
    """Row 0: ``image (C, S, S)`` in [-1, 1] and its attention rollout on top; then a row per
    layer with every head's class-token attention over the patches. ``attentions`` are
    the ViT's per-layer weights for this one image, ``(1, H, 1 + N, 1 + N)`` each."""
    c, height, width = image.shape
    heads = attentions[0].shape[1]
    grid = _grid(attentions[0].shape[-1] - 1, height, width)
    pixels = ((image.float().cpu() + 1) / 2).clamp(0, 1).permute(1, 2, 0)  # (S, S, C)
    pixels = pixels[..., 0] if c == 1 else pixels
    heat = class_token_map(attention_rollout(attentions), grid)[0]  # (h, w)
    up = F.interpolate(heat[None, None].cpu(), size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    columns = max(2, heads)
    fig, axes = plt.subplots(1 + len(attentions), columns, figsize=(1.9 * columns, 1.9 * (1 + len(attentions))), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    _show_image(axes[0, 0], pixels, "image")
    _show_image(axes[0, 1], pixels, "attention rollout")
    axes[0, 1].imshow(up.numpy(), cmap="inferno", alpha=0.55, vmin=0, vmax=1)
    for layer, weights in enumerate(attentions):
        for head in range(heads):
            cls_row = weights[0, head, 0, 1:].float().cpu().reshape(grid)  # (h, w)
            heat_map = cls_row / cls_row.max().clamp_min(1e-12)
            _show_image(axes[1 + layer, head], heat_map, f"layer {layer} head {head}", cmap="inferno")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def write_png(fig: Figure, path: Path) -> Path:
    """Write the figure as a PNG atomically (and close it)."""
    png = figure_png(fig)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(png))
    return path


def layer_head_grid(weights: Tensor, tokens: Sequence[str]) -> Figure:
    """Every head of every layer, ``weights (layers, H, L, L)``: a row per layer, tokens on the axes."""
    if weights.dim() != 4:
        raise AttnlabError(f"weights: expected (layers, H, L, L), got {tuple(weights.shape)}")
    layers, heads, length, _ = weights.shape
    side = max(2.4, 1.2 + CELL_INCHES * length)
    fig, axes = plt.subplots(layers, heads, figsize=(heads * side, layers * side), squeeze=False)
    for layer in range(layers):
        for head in range(heads):
            draw_heatmap(axes[layer, head], weights[layer, head], tokens, tokens, title=f"layer {layer} head {head}")
    fig.tight_layout()
    return fig
