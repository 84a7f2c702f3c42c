"""A toy showcase: one query sequence attending over one key sequence, through every
mechanism and normalizer attnlab has, printed as weight rows and drawn side by side.

Four families, drawn in this order:

- Transformer attention: scaled dot-product (softmax), causal, key padding, multi-head.
- Attention over an encoder memory, all query rows at once: additive (Bahdanau) and
  Luong's dot, general and concat scores.
- Decoder-step mechanisms, run over the query rows one step at a time with the state
  their API carries: local-m (the step), location-sensitive (previous and cumulative
  alignment), monotonic (previous alignment), hard (a sampled entry), coverage (C_{i-1}).
- Normalizers on the scaled dot scores: sparsemax, hardmax, sampled.

Every row is a distribution over the keys. Monotonic attention lets probability run off
the end of the memory; here the last key always stops the scan (p = 1 there), so its
rows sum to 1 as well. Local attention is shown in its local-m form: local-p's Gaussian
re-weighting leaves rows that sum to less than 1.

Used by ``attnlab showcase``; needs no data and runs in a second. The modules are
untrained (random weights from ``seed``), so the panels show each mechanism's *shape*
(window, band, one-hot, sparsity), not learned alignments.

Notation: Lq queries (decoder steps), Lk keys, D width; every tensor has batch size 1.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from attnlab.attention import (
    AdditiveAttention,
    CoverageAttention,
    HardAttention,
    LocalAttention,
    LocationSensitiveAttention,
    LuongAttention,
    MonotonicAttention,
    MultiHeadAttention,
    attend,
    monotonic_attention,
    scaled_dot_product_attention,
)
from attnlab.attention.monotonic import initial_alignment

HIDDEN = 16  # width of the additive/location/coverage tanh layers
PADDED_KEYS = 2  # the last keys of "key padding" are padding
LOCAL_WINDOW = 1  # D of local-m: keys i-1, i, i+1


def showcase_weights(seed: int = 0, length: int = 6, dim: int = 8) -> dict[str, Tensor]:
    """Weights ``(Lq, Lk)``, ``Lq = Lk = length``, of every mechanism on the same random q and k.

    Deterministic for a ``seed``; the global torch RNG is left as it was.
    """
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(1, length, dim, generator=gen)  # (1, Lq, D)
    k = torch.randn(1, length, dim, generator=gen)  # (1, Lk, D)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # module initialisations draw from the global RNG
        results = {
            **_transformer(q, k),
            **_memory(q, k),
            **_decoder_steps(q, k, gen),
            **_normalizers(q, k, gen),
        }
    return {name: w.reshape(length, length).detach() for name, w in results.items()}


def _transformer(q: Tensor, k: Tensor) -> dict[str, Tensor]:
    padding = torch.ones(1, 1, k.shape[1], dtype=torch.bool)
    padding[..., -PADDED_KEYS:] = False
    heads = 2
    mha = MultiHeadAttention(q.shape[-1], heads).eval()

    def sdpa(**kwargs) -> Tensor:
        return scaled_dot_product_attention(q, k, k, need_weights=True, **kwargs).weights

    return {
        "scaled dot (softmax)": sdpa(),
        "causal": sdpa(causal=True),
        "key padding": sdpa(mask=padding),
        f"multi-head (mean of {heads})": mha(q, k, k, need_weights=True).weights,
    }


def _memory(q: Tensor, k: Tensor) -> dict[str, Tensor]:
    dim = q.shape[-1]
    modules = {
        "additive (Bahdanau)": AdditiveAttention(dim, dim, HIDDEN),
        "Luong dot": LuongAttention(dim, dim, score="dot"),
        "Luong general": LuongAttention(dim, dim, score="general"),
        "Luong concat": LuongAttention(dim, dim, score="concat", hidden_dim=HIDDEN),
    }
    return {name: module(q, k, need_weights=True).weights for name, module in modules.items()}


def _decoder_steps(q: Tensor, k: Tensor, gen: torch.Generator) -> dict[str, Tensor]:
    """One decoder step per query row, carrying each mechanism's state; rows stacked to (Lq, Lk)."""
    dim, steps = q.shape[-1], q.shape[1]
    local = LocalAttention(dim, dim, mode="monotonic", window=LOCAL_WINDOW)
    location = LocationSensitiveAttention(dim, dim, HIDDEN, n_filters=4, kernel_size=3)
    # training mode without noise: p = sigmoid(e); a zero bias moves about one key a step
    monotonic = MonotonicAttention(dim, dim, HIDDEN, sigmoid_noise=0.0, score_bias_init=0.0).train()
    # training mode, REINFORCE, always sampled (never the expected context)
    hard = HardAttention(AdditiveAttention(dim, dim, HIDDEN), expected_prob=0.0).train()
    coverage = CoverageAttention(dim, dim, HIDDEN)

    names = ("local-m", "location", "monotonic", "hard (sampled)", "coverage")
    rows: dict[str, list[Tensor]] = {name: [] for name in names}
    previous = cumulative = covered = torch.zeros(1, k.shape[1])  # (1, Lk): nothing attended yet
    aligned = initial_alignment(1, k.shape[1])  # monotonic starts at key 0
    projected = monotonic.precompute_keys(k)
    for i in range(steps):
        query = q[:, i]  # (1, D)
        rows["local-m"].append(local(query, k, k, step=i).weights)

        weights = location(query, k, k, previous=previous, cumulative=cumulative).weights
        previous, cumulative = weights, cumulative + weights
        rows["location"].append(weights)

        p = monotonic.p_choose(query, projected)  # (1, Lk)
        p = torch.cat([p[:, :-1], torch.ones_like(p[:, -1:])], dim=1)  # always stop at the last key
        aligned = monotonic_attention(p, aligned, mode="parallel")
        rows["monotonic"].append(aligned)

        rows["hard (sampled)"].append(hard(query, k, k, generator=gen).weights)

        weights = coverage(query, k, k, coverage=covered).weights
        covered = coverage.update(covered, weights, coverage.fertility(k))
        rows["coverage"].append(weights)
    return {name: torch.stack(r, dim=1) for name, r in rows.items()}  # (1, Lq, Lk)


def _normalizers(q: Tensor, k: Tensor, gen: torch.Generator) -> dict[str, Tensor]:
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (1, Lq, Lk)
    return {
        "sparsemax": attend(scores, k, normalizer="sparsemax").weights,
        "hardmax": attend(scores, k, normalizer="hardmax").weights,
        "sampled": attend(scores, k, normalizer="sample", generator=gen).weights,
    }


def draw_showcase(weights: dict[str, Tensor], path: str | Path, *, columns: int = 4) -> Path:
    """Draw every mechanism's weights as heatmaps in a grid of ``columns``; returns the PNG path."""
    from attnlab.viz.heatmap import head_grid
    from attnlab.viz.rollout import write_png

    stacked = torch.stack(list(weights.values()))  # (mechanisms, Lq, Lk)
    keys = [f"k{j}" for j in range(stacked.shape[-1])]
    queries = [f"q{i}" for i in range(stacked.shape[-2])]
    figure = head_grid(stacked, keys, queries, titles=list(weights), columns=columns)
    return write_png(figure, Path(path))
