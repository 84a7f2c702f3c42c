"""Local attention (Luong, Pham & Manning 2015, "Effective Approaches to Attention-based
Neural Machine Translation", section 3.2).

Global attention looks at every source word; local attention looks at a window of 2D + 1
words around an aligned position p_i:

    local-m (monotonic):  p_i = i                                  (the decoder step)
    local-p (predictive): p_i = S sigmoid(v_p^T tanh(W_p s_i))     (S = source length)
    a_ij = softmax_{|j - p_i| <= D}(score(s_i, h_j))               (masked, shared core)
    local-p also favours words near p_i:  a_ij <- a_ij exp(-(j - p_i)^2 / (2 sigma^2)),
    sigma = D / 2, which keeps p_i differentiable.

``score`` is a Luong score (``"dot"``, ``"general"``, ``"concat"``) from
:class:`attnlab.attention.LuongAttention`. Weights are exactly zero outside the window.

Notation: B batch, Lk source length (padded), S real source length, Dq query width,
Dk key width, Dv value width, D half-width of the window.
Shapes: ``query (B, Dq)``, ``keys (B, Lk, Dk)``, ``values (B, Lk, Dv)``, ``mask (B, Lk)`` bool.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.attention.core import AttentionOutput, attend_step, check_module_dtype, weighted_sum
from attnlab.attention.luong import LuongAttention
from attnlab.errors import AttnlabError

MODES = ("monotonic", "predictive")


class LocalAttention(nn.Module):
    """Luong's local-m (``mode="monotonic"``) or local-p (``mode="predictive"``) attention.

    Args:
        query_dim, key_dim: widths of the decoder state and the encoder states.
        window: D, the half-width of the window.
        score: the Luong score inside the window.
        hidden_dim: width of W_p for local-p (default ``query_dim``).
    """

    def __init__(
        self,
        query_dim: int,
        key_dim: int,
        *,
        mode: str = "predictive",
        window: int = 5,
        score: str = "general",
        hidden_dim: int | None = None,
    ):
        super().__init__()
        if mode not in MODES:
            raise AttnlabError(f"mode must be one of {MODES}, got {mode!r}")
        if window < 1:
            raise AttnlabError(f"window (D) must be >= 1, got {window}")
        self.mode, self.window = mode, window
        self.scorer = LuongAttention(query_dim, key_dim, score=score)
        if mode == "predictive":
            hidden_dim = query_dim if hidden_dim is None else hidden_dim
            self.position_proj = nn.Linear(query_dim, hidden_dim, bias=False)  # W_p
            self.position_v = nn.Linear(hidden_dim, 1, bias=False)  # v_p

    def precompute_keys(self, keys: Tensor) -> Tensor:
        return self.scorer.precompute_keys(keys)

    def position(self, query: Tensor, lengths: Tensor, step: int | Tensor) -> Tensor:
        """The window centre p_i ``(B,)``: the step (local-m, at most S - 1) or S sigmoid(...) (local-p).

        ``step`` may be a 0-d integer tensor (an exported graph's input)."""
        if self.mode == "monotonic":
            return (lengths - 1).clamp(max=step).to(query.dtype)
        return lengths.to(query.dtype) * torch.sigmoid(self.position_v(torch.tanh(self.position_proj(query)))[:, 0])

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor,
        *,
        step: int | Tensor,
        mask: Tensor | None = None,
        projected_keys: Tensor | None = None,
    ) -> AttentionOutput:
        """Decoder step ``step`` (0-based): context ``(B, Dv)``, weights ``(B, Lk)`` zero outside the window."""
        check_module_dtype(self, query=query, keys=keys, values=values)
        projected_keys = self.precompute_keys(keys) if projected_keys is None else projected_keys
        batch, length = keys.shape[:2]
        if mask is None:
            mask = torch.ones(batch, length, dtype=torch.bool, device=keys.device)
        lengths = mask.sum(dim=1)  # (B,) S
        centre = self.position(query, lengths, step)  # (B,)
        offset = torch.arange(length, device=keys.device, dtype=query.dtype)[None, :] - centre[:, None]  # (B, Lk)
        in_window = mask & (offset.abs() <= self.window)
        scores = self.scorer.score(query[:, None, :], projected_keys)[:, 0]  # (B, Lk)
        out = attend_step(scores, values, in_window)
        if self.mode == "monotonic":
            return out
        sigma = self.window / 2
        weights = out.weights * torch.exp(-offset.square() / (2 * sigma**2))  # (B, Lk)
        return AttentionOutput(weighted_sum(weights, values), weights)
