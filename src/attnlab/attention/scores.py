"""Score functions: how much query i attends to key j, before masking and normalizing.

Each function returns raw scores e_ij of shape ``(..., Lq, Lk)`` that feed
:func:`attnlab.attention.core.attend` (mask -> normalize -> weighted sum).

    dot         e_ij = q_i . k_j                                  (Luong et al. 2015)
    scaled dot  e_ij = q_i . k_j / sqrt(D)                        (Vaswani et al. 2017)
    general     e_ij = q_i^T W k_j          a.k.a. bilinear       (Luong et al. 2015)
    concat      e_ij = v^T tanh(W [q_i; k_j])                     (Luong et al. 2015)
    additive    e_ij = v^T tanh(q'_i + k'_j (+ b)),               (Bahdanau et al. 2015)
                       q' = W_q q, k' = W_k k projected beforehand

Concat is additive attention with W = [W_q | W_k] split by columns: W [q; k] = W_q q + W_k k.

The additive score is memory-bounded. Written plainly it materialises
tanh(q'_i + k'_j) for every pair, a ``(..., Lq, Lk, H)`` tensor (4 GiB at B=2,
Lq=Lk=2048, H=128, and three of them in backward). When that does not fit in
``memory_budget`` bytes, :class:`_ChunkedAdditiveScore` walks over blocks of queries
and recomputes the block's tanh in backward, so the extra memory is
O(chunk * Lk * H) for the blocks plus O(Lq * Lk) for the scores themselves.

Notation: Lq queries, Lk keys, D query/key width, Dq query width, Dk key width,
H hidden width of the additive score, ``...`` leading batch dims (N when flattened).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.errors import AttnlabError

# Bytes the (chunk, Lk, H) blocks of the additive score may take; see `additive_score`.
DEFAULT_MEMORY_BUDGET = 64 * 2**20
# Plain autograd keeps ~3 full (..., Lq, Lk, H) tensors alive in backward; a chunk ~2.
_PLAIN_LIVE_BLOCKS, _CHUNK_LIVE_BLOCKS = 3, 2


def _check_pair(query: Tensor, keys: Tensor, query_width: int | None = None, key_width: int | None = None) -> None:
    """Clear errors for query ``(..., Lq, Dq)`` and keys ``(..., Lk, Dk)``."""
    for name, t, width in (("query", query, query_width), ("keys", keys, key_width)):
        if t.dim() < 2:
            raise AttnlabError(f"{name} must have shape (..., L, D), got {tuple(t.shape)}")
        if width is not None and t.shape[-1] != width:
            raise AttnlabError(f"{name} must have last dim {width}, got shape {tuple(t.shape)}")
    if query.dtype != keys.dtype or query.device != keys.device:
        raise AttnlabError(
            f"query and keys must share dtype and device, got {query.dtype}/{query.device} and {keys.dtype}/{keys.device}"
        )


def dot_score(query: Tensor, keys: Tensor) -> Tensor:
    """e_ij = q_i . k_j; query ``(..., Lq, D)``, keys ``(..., Lk, D)`` -> ``(..., Lq, Lk)``."""
    _check_pair(query, keys, key_width=query.shape[-1])
    return query @ keys.transpose(-2, -1)  # (..., Lq, Lk)


def scaled_dot_score(query: Tensor, keys: Tensor, scale: float | None = None) -> Tensor:
    """e_ij = q_i . k_j * scale, scale = 1/sqrt(D) by default; shapes as :func:`dot_score`."""
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    return dot_score(query * scale, keys)


def general_score(query: Tensor, keys: Tensor, weight: Tensor) -> Tensor:
    """e_ij = q_i^T W k_j (bilinear); query ``(..., Lq, Dq)``, keys ``(..., Lk, Dk)``, W ``(Dq, Dk)``.

    Computed as q . (W k_j): keys are mapped into the query space, as Luong attention does
    once per source sentence.
    """
    if weight.dim() != 2:
        raise AttnlabError(f"weight must have shape (Dq, Dk), got {tuple(weight.shape)}")
    _check_pair(query, keys, weight.shape[0], weight.shape[1])
    return dot_score(query, F.linear(keys, weight))  # W k: (..., Lk, Dq)


def concat_score(
    query: Tensor, keys: Tensor, weight: Tensor, v: Tensor, *, memory_budget: int = DEFAULT_MEMORY_BUDGET
) -> Tensor:
    """e_ij = v^T tanh(W [q_i; k_j]); W ``(H, Dq + Dk)``, v ``(H,)``; shapes as :func:`general_score`.

    Since W [q; k] = W_q q + W_k k with W = [W_q | W_k], this is :func:`additive_score`
    of the two projections (and as memory-bounded).
    """
    dq = query.shape[-1]
    if weight.dim() != 2 or weight.shape[1] != dq + keys.shape[-1]:
        raise AttnlabError(
            f"weight must have shape (H, Dq + Dk) = (H, {dq + keys.shape[-1]}), got {tuple(weight.shape)}"
        )
    _check_pair(query, keys)
    projected_query = F.linear(query, weight[:, :dq])  # (..., Lq, H)
    projected_keys = F.linear(keys, weight[:, dq:])  # (..., Lk, H)
    return additive_score(projected_query, projected_keys, v, memory_budget=memory_budget)


def additive_score(
    projected_query: Tensor,
    projected_keys: Tensor,
    v: Tensor,
    bias: Tensor | None = None,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> Tensor:
    """e_ij = v^T tanh(q'_i + k'_j + b), memory-bounded.

    Args:
        projected_query: q' = W_q q, ``(..., Lq, H)``.
        projected_keys:  k' = W_k k, ``(..., Lk, H)`` (leading dims broadcast with the query's).
        v: ``(H,)``.
        bias: b ``(H,)`` inside the tanh, or None.
        memory_budget: bytes the ``(Lq, Lk, H)`` intermediate may take. If the plain
            computation fits, it runs (fastest); otherwise queries are processed in
            chunks sized to the budget and each chunk is recomputed in backward.
    Returns:
        scores ``(..., Lq, Lk)``.
    """
    _check_pair(projected_query, projected_keys, key_width=projected_query.shape[-1])
    hidden = projected_query.shape[-1]
    if v.shape != (hidden,) or v.dtype != projected_query.dtype:
        raise AttnlabError(f"v must have shape (H,) = ({hidden},) and dtype {projected_query.dtype}, got {tuple(v.shape)} {v.dtype}")
    if bias is not None:
        if bias.shape != (hidden,):
            raise AttnlabError(f"bias must have shape (H,) = ({hidden},), got {tuple(bias.shape)}")
        projected_query = projected_query + bias  # tanh(q' + k' + b) = tanh((q' + b) + k')
    lead = torch.broadcast_shapes(projected_query.shape[:-2], projected_keys.shape[:-2])
    lq, lk = projected_query.shape[-2], projected_keys.shape[-2]
    row_bytes = lead.numel() * lk * hidden * projected_query.element_size()  # one query's (N, Lk, H)
    if _PLAIN_LIVE_BLOCKS * lq * row_bytes <= memory_budget:
        return materialised_additive_score(projected_query, projected_keys, v)
    chunk = max(1, memory_budget // (_CHUNK_LIVE_BLOCKS * row_bytes))
    q = projected_query.expand(*lead, lq, hidden).reshape(-1, lq, hidden)  # (N, Lq, H)
    k = projected_keys.expand(*lead, lk, hidden).reshape(-1, lk, hidden)  # (N, Lk, H)
    scores = _ChunkedAdditiveScore.apply(q, k, v, chunk)  # (N, Lq, Lk)
    return scores.view(*lead, lq, lk)


def materialised_additive_score(projected_query: Tensor, projected_keys: Tensor, v: Tensor) -> Tensor:
    """The textbook form: the whole ``(..., Lq, Lk, H)`` tanh at once, plain autograd."""
    hidden = torch.tanh(projected_query.unsqueeze(-2) + projected_keys.unsqueeze(-3))  # (..., Lq, Lk, H)
    return hidden @ v  # (..., Lq, Lk)


def _tanh_block(q_block: Tensor, k: Tensor) -> Tensor:
    """tanh(q'_i + k'_j) for a block of queries: ``(N, c, H), (N, Lk, H) -> (N, c, Lk, H)``."""
    return torch.add(q_block.unsqueeze(2), k.unsqueeze(1)).tanh_()


class _ChunkedAdditiveScore(torch.autograd.Function):
    """e = v^T tanh(q'_i + k'_j) over blocks of ``chunk`` queries, recomputed in backward.

    With t = tanh(q'_i + k'_j) and upstream gradient g_ij:
        dv     = sum_ij g_ij t_ij
        dq'_i  = v * sum_j g_ij (1 - t_ij^2)
        dk'_j  = v * sum_i g_ij (1 - t_ij^2)
    Shapes: q ``(N, Lq, H)``, k ``(N, Lk, H)``, v ``(H,)``, scores ``(N, Lq, Lk)``.
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, chunk: int) -> Tensor:
        scores = q.new_empty(q.shape[0], q.shape[1], k.shape[1])  # (N, Lq, Lk)
        for start in range(0, q.shape[1], chunk):
            block = slice(start, start + chunk)
            scores[:, block] = _tanh_block(q[:, block], k) @ v  # (N, c, Lk)
        ctx.save_for_backward(q, k, v)
        ctx.chunk = chunk
        return scores

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_scores: Tensor):
        q, k, v = ctx.saved_tensors
        grad_q = torch.empty_like(q)
        grad_k_unscaled = torch.zeros_like(k)  # sum_i g_ij (1 - t_ij^2), times v at the end
        grad_v = torch.zeros_like(v)
        for start in range(0, q.shape[1], ctx.chunk):
            block = slice(start, start + ctx.chunk)
            t = _tanh_block(q[:, block], k)  # (N, c, Lk, H)
            g = grad_scores[:, block].unsqueeze(-1)  # (N, c, Lk, 1)
            grad_v += (g.reshape(1, -1) @ t.view(-1, t.shape[-1])).view(-1)  # (H,)
            t.square_().neg_().add_(1).mul_(g)  # g_ij (1 - t_ij^2), in place
            grad_q[:, block] = t.sum(dim=2) * v  # (N, c, H)
            grad_k_unscaled += t.sum(dim=1)  # (N, Lk, H)
        return grad_q, grad_k_unscaled * v, grad_v, None
