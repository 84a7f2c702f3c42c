"""Coverage attention (Tu et al. 2016, "Modeling Coverage for Neural Machine Translation";
the coverage loss of See et al. 2017).

A translator that forgets what it already translated repeats or drops words. Coverage
keeps a vector C_i with how much attention each source word has received so far and
lets the scores see it:

    e_ij = v^T tanh(W s_i + V h_j + u C_{i-1,j} + b)      (the additive score, extra term u C_{i-1,j})
    a_i  = softmax_j(e_ij)          (masked, through the shared core ``attend``)
    C_ij = C_{i-1,j} + a_ij / Phi_j                       (linguistic coverage)

with fertility ``Phi_j = N sigmoid(w_f^T h_j)`` when ``fertility=N > 0`` (Tu et al.'s
fertility model) and ``Phi_j = 1`` otherwise. The coverage loss
``sum_i sum_j min(a_ij, C_{i-1,j})`` (See et al. 2017) penalises attending twice.

Notation: B batch, T target steps, Lk memory length, Dq query, Dk key, Dv value width,
A attention dim. Shapes: ``query (B, Dq)``, ``keys (B, Lk, Dk)``, ``values (B, Lk, Dv)``,
``coverage (B, Lk)``, ``mask (B, Lk)`` bool.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.attention.additive import AdditiveAttention
from attnlab.attention.core import AttentionOutput, attend_step, check_module_dtype
from attnlab.errors import AttnlabError


class CoverageAttention(nn.Module):
    """Additive attention with a coverage vector in the score: the additive score
    (:class:`AdditiveAttention` with a key bias: W = ``additive.query_proj``, V and b =
    ``additive.key_proj``, v = ``additive.v``) with u C as its extra term.

    ``precompute_keys(keys)`` projects the memory once per sentence; pass it back as
    ``projected_keys=``. ``fertility(keys)`` gives ``Phi (B, Lk)`` to divide the coverage update by.
    """

    def __init__(self, query_dim: int, key_dim: int, attention_dim: int = 128, *, fertility: int = 0):
        super().__init__()
        if fertility < 0:
            raise AttnlabError(f"fertility must be >= 0 (0 = off), got {fertility}")
        self.additive = AdditiveAttention(query_dim, key_dim, attention_dim, key_bias=True)
        self.coverage_weight = nn.Parameter(torch.randn(attention_dim) * attention_dim**-0.5)  # u
        self.fertility_max = fertility
        self.fertility_layer = nn.Linear(key_dim, 1) if fertility else None

    def precompute_keys(self, keys: Tensor) -> Tensor:
        """``keys (B, Lk, Dk)`` -> ``V h + b`` ``(B, Lk, A)``, once per source sentence."""
        return self.additive.precompute_keys(keys)

    def fertility(self, keys: Tensor) -> Tensor:
        """``Phi_j`` ``(B, Lk)``: ones without a fertility model."""
        if self.fertility_layer is None:
            return keys.new_ones(keys.shape[:2])
        return self.fertility_max * torch.sigmoid(self.fertility_layer(keys).squeeze(-1))

    def update(self, coverage: Tensor, weights: Tensor, fertility: Tensor) -> Tensor:
        """C_i = C_{i-1} + a_i / Phi, all ``(B, Lk)``."""
        return coverage + weights / fertility

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor,
        *,
        coverage: Tensor,
        mask: Tensor | None = None,
        projected_keys: Tensor | None = None,
    ) -> AttentionOutput:
        """One decoder step: context ``(B, Dv)`` and weights ``(B, Lk)``; ``coverage`` is C_{i-1}."""
        check_module_dtype(self, query=query, keys=keys, values=values)
        projected_keys = self.precompute_keys(keys) if projected_keys is None else projected_keys
        dtype = projected_keys.dtype
        coverage_term = coverage.to(dtype)[..., None] * self.coverage_weight.to(dtype)  # (B, Lk, A)
        scores = self.additive.score(query[:, None, :], projected_keys, extra=coverage_term)[:, 0]  # (B, Lk)
        return attend_step(scores, values, mask)


def coverage_loss(weights: Tensor, target_mask: Tensor | None = None) -> Tensor:
    """``sum_i sum_j min(a_ij, C_{i-1,j})`` averaged over target steps (See et al. 2017).

    ``weights (B, T, Lk)`` are the alignments of all steps; ``target_mask (B, T)`` True on
    real target tokens. ``C_{i-1} = sum_{k<i} a_k`` is the exclusive cumulative sum.
    """
    before = torch.cumsum(weights, dim=1) - weights  # (B, T, Lk)
    per_step = torch.minimum(weights, before).sum(dim=-1)  # (B, T)
    if target_mask is None:
        return per_step.mean()
    per_step = per_step * target_mask.to(per_step.dtype)
    return per_step.sum() / target_mask.sum().clamp_min(1)
