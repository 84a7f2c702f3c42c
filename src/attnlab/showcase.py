"""A toy showcase: one query sequence attending over one key sequence, through each
mechanism and normalizer attnlab has, printed as weight rows and drawn side by side.

Used by ``attnlab showcase``; needs no data and runs in a second.
"""

from __future__ import annotations

from pathlib import Path

import torch

from attnlab.attention import MultiHeadAttention, attend, causal_mask, scaled_dot_product_attention


def showcase_weights(seed: int = 0, length: int = 6, dim: int = 8) -> dict[str, torch.Tensor]:
    """Weights ``(Lq, Lk)`` of each mechanism on the same random queries and keys."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(1, length, dim, generator=gen)
    k = torch.randn(1, length, dim, generator=gen)
    scores = (q @ k.transpose(-2, -1)) * dim**-0.5  # (1, Lq, Lk)
    padding = torch.ones(1, 1, length, dtype=torch.bool)
    padding[..., -2:] = False  # the last two keys are padding
    results = {
        "scaled dot (softmax)": scaled_dot_product_attention(q, k, k, need_weights=True).weights,
        "causal": scaled_dot_product_attention(q, k, k, causal=True, need_weights=True).weights,
        "key padding": scaled_dot_product_attention(q, k, k, mask=padding, need_weights=True).weights,
        "sparsemax": attend(scores, k, normalizer="sparsemax").weights,
        "hardmax": attend(scores, k, normalizer="hardmax").weights,
        "sampled": attend(scores, k, normalizer="sample", generator=gen).weights,
    }
    torch.manual_seed(seed)
    mha = MultiHeadAttention(dim, 2).eval()
    results["multi-head (mean of 2)"] = mha(q, mask=causal_mask(length), need_weights=True).weights
    return {name: w[0].detach() for name, w in results.items()}


def draw_showcase(weights: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Draw every mechanism's weights as a heatmap in one row; returns the PNG path."""
    from attnlab.viz.heatmap import head_grid
    from attnlab.viz.rollout import write_png

    stacked = torch.stack(list(weights.values()))  # (mechanisms, Lq, Lk)
    keys = [f"k{j}" for j in range(stacked.shape[-1])]
    queries = [f"q{i}" for i in range(stacked.shape[-2])]
    figure = head_grid(stacked, keys, queries, titles=list(weights), columns=len(weights))
    return write_png(figure, Path(path))
