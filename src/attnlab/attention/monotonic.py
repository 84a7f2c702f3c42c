"""Monotonic attention (Raffel et al. 2017, "Online and Linear-Time Attention by Enforcing
Monotonic Alignments"), with TensorFlow Addons' semantics.

At output step i the decoder scans the memory left to right from where it stopped at step
i-1 and, at each memory entry j, stops with probability p_ij = sigmoid(e_ij). The expected
alignment is the recurrence

    q_ij = (1 - p_{i,j-1}) q_{i,j-1} + a_{i-1,j}          (q_{i,0} = a_{i-1,0})
    a_ij = p_ij q_ij

The "recursive" mode runs it as a loop over j. The "parallel" mode runs the same
recurrence as a prefix scan: each step j is the affine map q -> (1 - p_{i,j-1}) q + a_{i-1,j},
and composing maps is associative, so ceil(log2 Lk) vectorized passes (Hillis and Steele
1986) give every q_ij. It only multiplies and adds non-negative numbers, so it equals the
recursive mode within rounding everywhere, p = 0 or 1 and vanishing products included.
(TensorFlow Addons' closed form, ``a_i = p_i cumprod_excl(1 - p_i) cumsum(a_{i-1} /
cumprod_excl(1 - p_i))``, divides by a cumulative product that underflows and clamps it to
1e-10: with p = 0.5, Lk = 40 and the previous alignment at the end it gives 0.0091 where
the recurrence gives 0.5.) The "hard" mode (inference) takes a binary p and
attends to exactly the first j at or after the previous position with p_ij = 1 (or to
nothing, when there is none). Rows of a_i sum to at most 1: the rest is the chance of
running off the end of the memory.

Notation: B batch, Lk memory length, Dq query width, Dk key width, Dv value width.
Shapes: ``p_choose``, ``previous_attention`` and the result are ``(B, Lk)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.additive import AdditiveAttention
from attnlab.attention.core import AttentionOutput, check_module_dtype, weighted_sum
from attnlab.attention.luong import LuongAttention
from attnlab.errors import AttnlabError

MODES = ("parallel", "recursive", "hard")


def linear_recurrence(decay: Tensor, x: Tensor) -> Tensor:
    """``q_j = decay_j q_{j-1} + x_j`` (``q_{-1} = 0``) along the last dim, as a prefix scan.

    Element j holds the composition ``(A, B)`` (q -> A q + B) of the maps of a window ending
    at j; each pass composes it with the window ending ``shift`` earlier (the identity
    ``(1, 0)`` before the start): ``B <- A B_prev + B``, ``A <- A A_prev``. Shapes ``(..., L)``.
    """
    a, b = decay, x
    shift, length = 1, x.shape[-1]
    while shift < length:
        b = b + a * F.pad(b[..., :-shift], (shift, 0))  # (..., L)
        if 2 * shift < length:  # the last pass needs no A
            a = a * F.pad(a[..., :-shift], (shift, 0), value=1.0)
        shift *= 2
    return b


def monotonic_attention(p_choose: Tensor, previous_attention: Tensor, mode: str = "parallel") -> Tensor:
    """Expected monotonic alignment ``(B, Lk)`` from stopping probabilities ``p_choose (B, Lk)``.

    ``mode`` is ``"recursive"`` (the exact recurrence, a loop over Lk), ``"parallel"`` (the
    same recurrence as a prefix scan in ceil(log2 Lk) passes; equal within rounding) or ``"hard"``
    (``p_choose`` 0/1 and ``previous_attention`` one-hot or zeros, as hard mode gives: a
    one-hot row at the first chosen j at or after the previous position, or zeros; other
    inputs are an error).
    ``previous_attention`` of the first output step is one-hot at 0.
    """
    if mode not in MODES:
        raise AttnlabError(f"mode must be one of {MODES}, got {mode!r}")
    if not (p_choose.is_floating_point() and p_choose.dtype == previous_attention.dtype):
        raise AttnlabError(
            f"p_choose and previous_attention must share a floating-point dtype, got {p_choose.dtype} "
            f"and {previous_attention.dtype}"
        )
    if p_choose.dim() != 2 or p_choose.shape != previous_attention.shape:
        raise AttnlabError(
            f"p_choose and previous_attention must both be (B, Lk), got {tuple(p_choose.shape)} "
            f"and {tuple(previous_attention.shape)}"
        )
    if mode == "hard" and not torch.compiler.is_compiling() and not _hard_inputs(p_choose, previous_attention):
        raise AttnlabError(
            "monotonic_attention(mode='hard'): p_choose must be 0 or 1 and previous_attention rows one-hot or "
            "zero (what hard mode gives); for probabilities use mode='parallel' or 'recursive'"
        )
    if p_choose.shape[1] == 0:  # no memory: nothing to attend to
        return p_choose * previous_attention
    if mode == "recursive":
        one_minus_shifted = torch.cat([torch.ones_like(p_choose[:, :1]), 1 - p_choose[:, :-1]], dim=1)
        q = torch.zeros_like(p_choose[:, 0])
        columns = []
        for j in range(p_choose.shape[1]):
            q = one_minus_shifted[:, j] * q + previous_attention[:, j]
            columns.append(q)
        return p_choose * torch.stack(columns, dim=1)
    if mode == "parallel":
        one_minus_shifted = F.pad(1 - p_choose[:, :-1], (1, 0), value=1.0)  # (B, Lk): 1 - p_{j-1}
        return p_choose * linear_recurrence(one_minus_shifted, previous_attention)
    # hard: drop the chances before the previous position, keep only the first chosen one (on 0/1
    # values TFA's exclusive cumprod of 1 - p; a count of earlier choices, which ONNX can export)
    p_choose = p_choose * torch.cumsum(previous_attention, dim=1)
    chosen_before = torch.cumsum(p_choose, dim=1) - p_choose  # (B, Lk)
    return p_choose * (chosen_before == 0).to(p_choose.dtype)


def _hard_inputs(p_choose: Tensor, previous_attention: Tensor) -> bool:
    """``p_choose`` all 0/1 and each row of ``previous_attention`` one-hot or zeros."""
    def binary(t: Tensor) -> bool:
        return bool(((t == 0) | (t == 1)).all())

    return binary(p_choose) and binary(previous_attention) and bool((previous_attention.sum(dim=1) <= 1).all())


def initial_alignment(batch: int, length: int, *, dtype=torch.float32, device=None) -> Tensor:
    """The alignment "before the first output": one-hot at memory position 0, ``(B, Lk)``."""
    start = torch.zeros(batch, length, dtype=dtype, device=device)
    start[:, 0] = 1.0
    return start


class MonotonicAttention(nn.Module):
    """Monotonic attention on Bahdanau (additive) or Luong (multiplicative) energies.

    ``e_ij = energy(s_i, h_j) + r`` with a learned scalar ``r`` (``score_bias_init``;
    Raffel et al. suggest a negative value such as -4 so that the decoder starts by moving
    on); ``p_ij = sigmoid(e_ij + sigmoid_noise * N(0, 1))`` in training (the noise pushes
    the energies away from 0, so hard decisions at inference match training) and
    ``p_ij = [e_ij > 0]``, mode ``"hard"``, at inference (in ``eval()``).

    Args:
        query_dim, key_dim: widths of the decoder query and the memory.
        hidden_dim: H of the Bahdanau energy.
        energy: ``"bahdanau"`` (:class:`AdditiveAttention`, with ``normalize``) or
            ``"luong"`` (:class:`LuongAttention` ``"general"``, with ``scale``).
        mode: ``"parallel"`` or ``"recursive"`` for training.
    """

    def __init__(
        self,
        query_dim: int,
        key_dim: int,
        hidden_dim: int = 128,
        *,
        energy: str = "bahdanau",
        normalize: bool = False,
        scale: bool = False,
        sigmoid_noise: float = 1.0,
        score_bias_init: float = -1.0,
        mode: str = "parallel",
    ):
        super().__init__()
        if energy not in ("bahdanau", "luong"):
            raise AttnlabError(f"energy must be 'bahdanau' or 'luong', got {energy!r}")
        if mode not in ("parallel", "recursive"):
            raise AttnlabError(f"mode (training) must be 'parallel' or 'recursive', got {mode!r}")
        if energy == "bahdanau":
            self.energy = AdditiveAttention(query_dim, key_dim, hidden_dim, normalize=normalize)
        else:
            self.energy = LuongAttention(query_dim, key_dim, score="general", scale=scale)
        self.score_bias = nn.Parameter(torch.tensor(float(score_bias_init)))
        self.sigmoid_noise = sigmoid_noise
        self.mode = mode

    def precompute_keys(self, keys: Tensor) -> Tensor:
        """The key side of the energy, once per source sentence."""
        return self.energy.precompute_keys(keys)

    def p_choose(self, query: Tensor, projected_keys: Tensor, mask: Tensor | None = None) -> Tensor:
        """Stopping probabilities ``(B, Lk)`` (0/1 in eval mode); 0 on masked memory."""
        scores = self.energy.score(query[:, None, :], projected_keys)[:, 0] + self.score_bias  # (B, Lk)
        if self.training and self.sigmoid_noise > 0:
            scores = scores + self.sigmoid_noise * torch.randn_like(scores)
        p = torch.sigmoid(scores) if self.training else (scores > 0).to(scores.dtype)
        return p if mask is None else p * mask.to(p.dtype)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor,
        *,
        previous: Tensor,
        mask: Tensor | None = None,
        projected_keys: Tensor | None = None,
    ) -> AttentionOutput:
        """One decoder step: ``query (B, Dq)``, ``keys (B, Lk, Dk)``, ``values (B, Lk, Dv)``,
        ``previous`` alignment ``(B, Lk)`` (:func:`initial_alignment` at the first step),
        ``mask (B, Lk)`` True on real memory. Returns output ``(B, Dv)``, weights ``(B, Lk)``.
        """
        check_module_dtype(self, query=query, keys=keys, values=values)
        projected_keys = self.precompute_keys(keys) if projected_keys is None else projected_keys
        p = self.p_choose(query, projected_keys, mask)
        weights = monotonic_attention(p, previous.to(p.dtype), self.mode if self.training else "hard")
        return AttentionOutput(weighted_sum(weights, values), weights)
