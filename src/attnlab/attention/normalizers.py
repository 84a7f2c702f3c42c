"""Normalizers: turn masked scores ``(..., Lq, Lk)`` into attention weights over keys.

Every normalizer takes ``scores`` whose blocked entries are already ``-inf`` and returns
weights of the same shape that are 0 on blocked keys. A row with no allowed key gets
all-zero weights (and finite gradients) instead of NaN.

- ``softmax``:   w_j = exp(s_j) / sum_k exp(s_k)                    (Bahdanau et al. 2015)
- ``sparsemax``: w = argmin_{p in simplex} ||p - s||^2               (Martins & Astudillo 2016)
                 = max(s - tau, 0) with tau chosen so the weights sum to 1
- ``hardmax``:   one-hot at argmax_j s_j                             (hard attention at inference)
- ``sample``:    one-hot sample j ~ softmax(s), with log p(j)        (Xu et al. 2015, REINFORCE)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.errors import AttnlabError


def safe_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last dim; rows that are entirely ``-inf`` give zeros, not NaN.

    Gradients stay finite: the row maximum is replaced by 0 when it is ``-inf`` so no
    ``inf - inf`` appears, and the denominator is clamped away from 0. (:func:`attend`
    uses the faster plain softmax after opening empty rows; this is for scores that
    carry their own ``-inf``.)
    """
    row_max = scores.amax(dim=-1, keepdim=True).detach()
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    exp = torch.exp(scores - row_max)
    denom = exp.sum(dim=-1, keepdim=True)
    return exp / denom.clamp_min(torch.finfo(exp.dtype).tiny)


def softmax(scores: Tensor) -> Tensor:
    """Plain softmax; every row must have at least one finite score."""
    return torch.softmax(scores, dim=-1)


def sparsemax(scores: Tensor) -> Tensor:
    """Euclidean projection of each row onto the probability simplex (sparse weights)."""
    allowed = torch.isfinite(scores)
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    # Blocked entries sit 2 below the row maximum: never in the support (tau >= max - 1).
    z = torch.where(allowed, scores, row_max - 2.0)
    z_sorted, _ = torch.sort(z, dim=-1, descending=True)
    ks = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    cumsum = z_sorted.cumsum(dim=-1)
    in_support = 1 + ks * z_sorted > cumsum  # (..., Lk)
    support_size = in_support.sum(dim=-1, keepdim=True)  # k(z) >= 1
    tau = (cumsum.gather(-1, support_size - 1) - 1) / support_size.to(z.dtype)
    weights = torch.clamp(z - tau, min=0)
    return weights * allowed.any(dim=-1, keepdim=True)


def hardmax(scores: Tensor) -> Tensor:
    """One-hot weights at the best allowed key (no gradient); all-zero for fully blocked rows."""
    index = scores.argmax(dim=-1, keepdim=True)  # (..., 1)
    one_hot = torch.zeros_like(scores).scatter(-1, index, 1.0)  # not F.one_hot: its class count would fix Lk in a traced graph
    return one_hot * torch.isfinite(scores).any(dim=-1, keepdim=True)


def sample(scores: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Sample one key per query from softmax(scores).

    Returns ``(one_hot, log_prob)``: one-hot weights ``(..., Lq, Lk)`` (no gradient) and
    ``log p(sampled key)`` ``(..., Lq)`` (differentiable, for REINFORCE). Fully blocked rows
    give zero weights and log-probability 0.
    """
    probs = safe_softmax(scores)
    valid = probs.sum(dim=-1, keepdim=True) > 0
    flat = torch.where(valid, probs, torch.ones_like(probs)).detach().reshape(-1, probs.shape[-1])
    index = torch.multinomial(flat.float(), 1, generator=generator).view(probs.shape[:-1])
    one_hot = F.one_hot(index, probs.shape[-1]).to(probs.dtype) * valid
    log_prob = torch.log(probs.gather(-1, index.unsqueeze(-1)).clamp_min(1e-30)).squeeze(-1)
    return one_hot, log_prob * valid.squeeze(-1)


NORMALIZERS = {"softmax": softmax, "sparsemax": sparsemax, "hardmax": hardmax}


def get_normalizer(name: str):
    if name not in NORMALIZERS:
        raise AttnlabError(f"normalizer must be one of {sorted(NORMALIZERS) + ['sample']}, got {name!r}")
    return NORMALIZERS[name]
