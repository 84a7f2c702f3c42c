"""Location-sensitive attention (Chorowski et al. 2015, "Attention-Based Models for Speech
Recognition"; the hybrid form of Tacotron 2, Shen et al. 2018).

The scores see *where* the decoder attended before, through a convolution over the
previous and the cumulative attention weights:

    f_i  = F * [a_{i-1}; sum_{k<i} a_k]                    (2 channels -> n_filters, kernel K)
    e_ij = v^T tanh(W s_i + V h_j + U f_ij)               (the additive score, extra term U f_ij)
    a_i  = softmax_j(e_ij)     (masked, through the shared core ``attend``)

Defaults follow Tacotron 2: 32 filters, kernel 31, attention dim 128; W, V, U and F have
no bias (Tacotron 2's bias on v shifts every score alike, so softmax drops it).

Notation: B batch, Lk memory length, Dq query width, Dk key width, Dv value width,
A attention dim, C n_filters. Shapes: ``query (B, Dq)``, ``keys (B, Lk, Dk)``,
``values (B, Lk, Dv)``, ``previous``/``cumulative`` ``(B, Lk)``, ``mask (B, Lk)`` bool.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.attention.additive import AdditiveAttention
from attnlab.attention.core import AttentionOutput, attend_step, check_module_dtype
from attnlab.errors import AttnlabError


class LocationSensitiveAttention(nn.Module):
    """Additive attention whose scores also see a convolution of past alignments: the
    additive score (:class:`AdditiveAttention`, W = ``additive.query_proj``, V =
    ``additive.key_proj``, v = ``additive.v``) with the location features as its extra term.

    ``precompute_keys(keys)`` projects the memory once per sentence (``V h_j``); pass it
    back as ``projected_keys=`` at every step. ``forward`` returns the context ``(B, Dv)`` and weights ``(B, Lk)``.
    """

    def __init__(
        self, query_dim: int, key_dim: int, attention_dim: int = 128, *, n_filters: int = 32, kernel_size: int = 31
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise AttnlabError(f"kernel_size must be odd (a centred window), got {kernel_size}")
        self.additive = AdditiveAttention(query_dim, key_dim, attention_dim)
        self.location_conv = nn.Conv1d(2, n_filters, kernel_size, padding=kernel_size // 2, bias=False)
        self.location_dense = nn.Linear(n_filters, attention_dim, bias=False)

    def precompute_keys(self, keys: Tensor) -> Tensor:
        """``keys (B, Lk, Dk)`` -> ``V h`` ``(B, Lk, A)``, computed once per source sentence."""
        return self.additive.precompute_keys(keys)

    def location_features(self, previous: Tensor, cumulative: Tensor) -> Tensor:
        """``U (F * [a_{i-1}; cumulative])`` ``(B, Lk, A)``."""
        weights = torch.stack([previous, cumulative], dim=1)  # (B, 2, Lk)
        features = self.location_conv(weights).transpose(1, 2)  # (B, C, Lk) -> (B, Lk, C)
        return self.location_dense(features)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor,
        *,
        previous: Tensor,
        cumulative: Tensor,
        mask: Tensor | None = None,
        projected_keys: Tensor | None = None,
    ) -> AttentionOutput:
        """One decoder step; see the module docstring for shapes."""
        check_module_dtype(self, query=query, keys=keys, values=values)
        projected_keys = self.precompute_keys(keys) if projected_keys is None else projected_keys
        dtype = projected_keys.dtype
        location = self.location_features(previous.to(dtype), cumulative.to(dtype))  # (B, Lk, A)
        scores = self.additive.score(query[:, None, :], projected_keys, extra=location)[:, 0]  # (B, Lk)
        return attend_step(scores, values, mask)
