"""Attention of decoder states over an encoder memory: the frame shared by Bahdanau and Luong.

A decoder state (query) q_i scores every encoder state (key) k_j, the scores go through
the shared core (mask -> normalize -> weighted sum of the values):

    e_ij = score(q_i, k'_j)      k'_j = precompute_keys(k)_j, once per source sentence
    a_ij = normalize_j(e_ij)     (softmax by default; masked keys get weight 0)
    c_i  = sum_j a_ij v_j        (the context vector; values default to the keys)

A subclass defines ``precompute_keys`` (the key-side projection) and ``score``.
An RNN decoder calls ``precompute_keys(encoder_states)`` once and passes the result as
``projected_keys=`` at every step, so the key projection is not recomputed per step.

Notation: B batch, Lq queries (decoder steps), Lk keys (source positions),
Dq query width, Dk key width, Dv value width, P width of the projected keys.
"""

from __future__ import annotations

from torch import Tensor, nn

from attnlab.attention.core import AttentionOutput, attend, check_module_dtype
from attnlab.errors import AttnlabError


def _check_shape(name: str, t: Tensor, want: tuple[int | str, int | str, int | str]) -> None:
    """``t`` must be 3-D with the sizes in ``want``; a str entry (a dim's name) matches any size."""
    if t.dim() != 3 or any(isinstance(w, int) and w != have for w, have in zip(want, t.shape)):
        raise AttnlabError(f"{name} must have shape ({', '.join(map(str, want))}), got {tuple(t.shape)}")


def _key_mask(mask: Tensor | None, single_step: bool) -> Tensor | None:
    """Accept the masks of :mod:`attnlab.attention.masks` for a single-head score ``(B, Lq, Lk)``.

    A ``(B, 1, Lq|1, Lk)`` mask (e.g. from ``mask_from_lengths``) drops its head dim; for a
    single query step a ``(B, Lk)`` mask means one row per batch element.
    """
    if mask is None:
        return None
    if mask.dim() == 4:
        if mask.shape[1] != 1:
            raise AttnlabError(f"mask has {mask.shape[1]} heads; attention over a memory has one, got {tuple(mask.shape)}")
        mask = mask.squeeze(1)  # (B, Lq|1, Lk)
    elif single_step and mask.dim() == 2:
        mask = mask.unsqueeze(1)  # (B, 1, Lk)
    return mask


class MemoryAttention(nn.Module):
    """Base of :class:`AdditiveAttention` and :class:`LuongAttention`; see the module docstring."""

    query_dim: int
    key_dim: int

    def precompute_keys(self, keys: Tensor) -> Tensor:
        """Key-side projection ``(B, Lk, Dk) -> (B, Lk, P)``, computed once per source sentence."""
        raise NotImplementedError

    def score(self, query: Tensor, projected_keys: Tensor) -> Tensor:
        """Raw scores ``(B, Lq, Dq), (B, Lk, P) -> (B, Lq, Lk)``."""
        raise NotImplementedError

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        need_weights: bool = False,
        normalizer: str = "softmax",
        projected_keys: Tensor | None = None,
    ) -> AttentionOutput:
        """Attend from decoder states to the memory.

        Args:
            query: ``(B, Lq, Dq)``, or one decoder step ``(B, Dq)``.
            keys: ``(B, Lk, Dk)`` encoder states.
            values: ``(B, Lk, Dv)``; default: the keys.
            mask: bool (True = allowed) or float (added), broadcastable to ``(B, Lq, Lk)``;
                ``(B, 1, Lq|1, Lk)`` masks from :mod:`attnlab.attention.masks` are accepted,
                and ``(B, Lk)`` for a single step. Queries with no allowed key get zeros.
            need_weights: also return the attention weights.
            normalizer: ``"softmax"`` | ``"sparsemax"`` | ``"hardmax"`` | ``"sample"``.
            projected_keys: ``precompute_keys(keys)``, to reuse it across decoder steps.
        Returns:
            AttentionOutput: ``output (B, Lq, Dv)`` and ``weights (B, Lq, Lk)`` (or None);
            for a single step ``(B, Dv)`` and ``(B, Lk)``. ``log_prob`` with ``"sample"``.
        """
        single_step = query.dim() == 2
        if single_step:
            query = query.unsqueeze(1)  # (B, 1, Dq)
        values = keys if values is None else values
        _check_shape("query", query, ("B", "Lq", self.query_dim))
        _check_shape("keys", keys, (query.shape[0], "Lk", self.key_dim))
        _check_shape("values", values, (query.shape[0], keys.shape[1], "Dv"))
        if not (query.dtype == keys.dtype == values.dtype):
            raise AttnlabError(f"query, keys, values must share a dtype, got {query.dtype}, {keys.dtype}, {values.dtype}")
        check_module_dtype(self, query=query, keys=keys, values=values)
        if projected_keys is None:
            projected_keys = self.precompute_keys(keys)
        _check_shape("projected_keys", projected_keys, (query.shape[0], keys.shape[1], "P"))
        scores = self.score(query, projected_keys)  # (B, Lq, Lk)
        result = attend(scores, values, mask=_key_mask(mask, single_step), normalizer=normalizer)
        output, weights, log_prob = result.output, result.weights, result.log_prob
        if single_step:  # (B, 1, .) -> (B, .)
            output, weights = output.squeeze(1), weights.squeeze(1)
            log_prob = None if log_prob is None else log_prob.squeeze(1)
        return AttentionOutput(output, weights if need_weights else None, log_prob)
