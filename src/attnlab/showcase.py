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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(weights), figsize=(2.6 * len(weights), 2.9))
    for ax, (name, w) in zip(axes, weights.items()):
        ax.imshow(w.float().numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
