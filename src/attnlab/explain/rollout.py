"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

Heads averaged, the residual connection modelled as an identity, layers multiplied:

    Â_l = 0.5 A_l + 0.5 I   (layers with a residual path; else Â_l = A_l), rows renormalised
    R   = Â_N Â_{N-1} ... Â_1,          a_j = R[q, u_j]

The same rule as the pictures' ``attnlab.viz.rollout.attention_rollout``, in the maps'
own precision, over the attention graph of the :class:`Explainable` (for a translator:
the encoder's self-attention, then the decoder's last cross-attention).
Cost: N products of (M, M) matrices, O(N M^3).
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.explain.explainable import Explainable


def mixed_layers(x: Explainable) -> list[Tensor]:
    """Each layer ``(M, M)``, heads averaged, with the identity of its residual path mixed in."""
    maps = x.maps()
    if len(x.residual) != len(maps):
        raise ValueError(f"residual: expected {len(maps)} flags (one per layer), got {len(x.residual)}")
    mixed = []
    for m, res in zip(maps, x.residual):
        layer = m.mean(dim=0)  # (M, M)
        if res:
            layer = 0.5 * layer + 0.5 * torch.eye(layer.shape[-1], dtype=layer.dtype, device=layer.device)
        mixed.append(layer / layer.sum(dim=-1, keepdim=True).clamp_min(1e-30))
    return mixed


def rollout(x: Explainable) -> Tensor:
    """``(L,)``: row ``q`` of the rolled-out attention, at the units."""
    total = None
    for layer in mixed_layers(x):
        total = layer if total is None else layer @ total  # later layers on the left
    return total[x.query, x.units]
