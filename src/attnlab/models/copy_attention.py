"""Copy attention: the pointer-generator's output distribution (See et al. 2017, "Get To
The Point"; Gu et al. 2016, CopyNet), for a translator whose source and target share one
vocabulary (the joint byte-level BPE of the gettext recipe).

A decoder step with hidden state ``h_t`` and cross-attention ``a_t`` over the source
tokens ``x_1 .. x_S`` (the last decoder layer's, averaged over its heads) writes token
``w`` with probability::

    g_t      = sigmoid(w_g . h_t + b_g)                     how much to generate
    P_t(w)   = g_t softmax(W h_t)_w  +  (1 - g_t) sum_{j : x_j = w} a_tj

so a name, a command option or an acronym the model has not learned to spell can be taken
from the source where the decoder attends. Computed in log space (fp32), and only where the
copy adds anything -- at the source's own tokens, ``S`` of the ``V`` entries::

    log P_t(w) = logsigmoid(z_t) + log_softmax(W h_t)_w                   w not in the source
    log P_t(w) = logaddexp(logsigmoid(z_t) + log_softmax(W h_t)_w,
                           logsigmoid(-z_t) + log copy_t(w))              w = x_j

with ``copy_t(x_j) = sum_k a_tk [x_k = x_j]`` (a ``(S, S)`` product per sentence), written
once per distinct source token (its first position). A copy mass of 0 (a padded position)
is floored at 1e-30 so that its logarithm and gradient stay finite.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

COPY_FLOOR = 1e-30


class CopyGate(nn.Module):
    """``z_t = w_g . h_t + b_g``: the logit of generating rather than copying."""

    def __init__(self, d_model: int):
        super().__init__()
        self.proj = nn.Linear(d_model, 1)

    def forward(self, hidden: Tensor) -> Tensor:
        """``hidden (B, T, D)`` -> ``(B, T, 1)``."""
        return self.proj(hidden)


def copy_log_probs(logits: Tensor, gate: Tensor, attention: Tensor, src_ids: Tensor) -> Tensor:
    """``log P (B, T, V)`` in fp32 (fp64 for fp64 inputs; module docstring) from the vocabulary
    ``logits (B, T, V)``, the gate's logit ``gate (B, T, 1)``, the heads' mean cross-attention
    ``attention (B, T, S)`` (zero on padding) and the source ids ``src_ids (B, S)`` in the
    same vocabulary."""
    b, t, _ = logits.shape
    dtype = torch.promote_types(logits.dtype, torch.float32)  # fp32, or fp64 for an fp64 model
    gate = gate.to(dtype)
    generate = F.logsigmoid(gate) + F.log_softmax(logits.to(dtype), dim=-1)  # (B, T, V)
    same = src_ids[:, :, None] == src_ids[:, None, :]  # (B, S, S): positions holding one token
    mass = attention.to(dtype) @ same.to(dtype)  # (B, T, S): copy_t(x_j)
    index = src_ids[:, None, :].expand(b, t, -1)  # (B, T, S)
    at_source = generate.gather(-1, index)
    mixed = torch.logaddexp(at_source, F.logsigmoid(-gate) + mass.clamp_min(COPY_FLOOR).log())
    earlier = torch.ones_like(same).tril(-1)  # (B, S, S): k < j
    first = ~(same & earlier).any(dim=-1)  # (B, S): the first position of each distinct token
    return generate.scatter_add(-1, index, (mixed - at_source) * first[:, None, :].to(dtype))


def smoothed_nll(log_probs: Tensor, labels: Tensor, pad_id: int, smoothing: float) -> Tensor:
    """Label-smoothed cross-entropy of normalised ``log_probs (B, T, V)`` against ``labels (B, T)``
    over the non-pad labels, what ``F.cross_entropy(..., label_smoothing=e)`` computes without
    its log_softmax (a second pass over ``(B, T, V)`` that changes nothing here)::

        loss = mean over labels y != pad of  (1 - e) (-log p(y)) + e mean_w (-log p(w))
    """
    flat, target = log_probs.float().flatten(0, 1), labels.flatten()  # (N, V), (N,)
    keep = (target != pad_id).to(flat.dtype)
    nll = -flat.gather(-1, target[:, None]).squeeze(-1)
    per_label = (1 - smoothing) * nll - smoothing * flat.mean(-1)
    return (per_label * keep).sum() / keep.sum()
