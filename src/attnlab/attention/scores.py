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

The additive score is memory-bounded. Written plainly
(:func:`materialised_additive_score`) it holds tanh(q'_i + k'_j) for every pair, a
``(..., Lq, Lk, H)`` tensor (4 GiB at B=2, Lq=Lk=2048, H=128, and about three of them in
backward). :class:`_ChunkedAdditiveScore` instead walks over blocks of queries sized to
``memory_budget`` bytes and recomputes each block in backward, so the extra memory is
O(chunk * Lk * H) for one block plus O(Lq * Lk) for the scores themselves.

It evaluates tanh through the identity tanh(x) = 2 sigmoid(2x) - 1, so

    e_ij = (2v)^T sigmoid(2q'_i + 2k'_j) - sum_h v_h

because PyTorch's CPU sigmoid is several times faster than its tanh, and tanh is where
the time goes (measured in ``benchmarks/additive_memory.py``).

Notation: Lq queries, Lk keys, D query/key width, Dq query width, Dk key width,
H hidden width of the additive score, ``...`` leading batch dims (N when flattened).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.errors import AttnlabError

# Bytes the (N, chunk, Lk, H) block of the additive score may take; see `additive_score`.
# Small enough to stay in cache across the block's several passes, which measured fastest
# (benchmarks/additive_memory.py): fewer, larger blocks only pay off when threads are starved.
DEFAULT_MEMORY_BUDGET = 4 * 2**20


def _check_pair(query: Tensor, keys: Tensor, query_width: int | None = None, key_width: int | None = None) -> None:
    """Clear errors for query ``(..., Lq, Dq)`` and keys ``(..., Lk, Dk)``."""
    for name, t, width in (("query", query, query_width), ("keys", keys, key_width)):
        if t.dim() < 2:
            raise AttnlabError(f"{name} must have shape (..., L, D), got {tuple(t.shape)}")
        if width is not None and t.shape[-1] != width:
            raise AttnlabError(f"{name} must have last dim {width}, got shape {tuple(t.shape)}")
    mixed_dtype = query.dtype != keys.dtype and not torch.is_autocast_enabled(query.device.type)
    if mixed_dtype or query.device != keys.device:
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
        memory_budget: bytes the ``(N, chunk, Lk, H)`` block of pairs may take; queries are
            processed ``chunk`` at a time and recomputed in backward (first-order gradients).
    Returns:
        scores ``(..., Lq, Lk)`` in the dtype of q' and k' (computed in fp32 for bf16/fp16;
        v and b follow the inputs' dtype, as under autocast).
    """
    _check_pair(projected_query, projected_keys, key_width=projected_query.shape[-1])
    hidden = projected_query.shape[-1]
    for name, t in (("v", v), ("bias", bias)):
        if t is not None and t.shape != (hidden,):
            raise AttnlabError(f"{name} must have shape (H,) = ({hidden},), got {tuple(t.shape)}")
    if bias is not None:
        projected_query = projected_query + bias  # tanh(q' + k' + b) = tanh((q' + b) + k')
    dtype = torch.promote_types(projected_query.dtype, projected_keys.dtype)
    # bf16/fp16 (e.g. under autocast) compute in fp32: e = (2v)^T s - sum(v) cancels.
    compute = torch.float32 if dtype.itemsize < 4 else dtype
    lead = torch.broadcast_shapes(projected_query.shape[:-2], projected_keys.shape[:-2])
    lq, lk = projected_query.shape[-2], projected_keys.shape[-2]
    n = math.prod(lead)  # explicit, not -1: any of N, Lq, Lk may be 0
    q = projected_query.to(compute).expand(*lead, lq, hidden).reshape(n, lq, hidden)  # (N, Lq, H)
    k = projected_keys.to(compute).expand(*lead, lk, hidden).reshape(n, lk, hidden)  # (N, Lk, H)
    scores = _ChunkedAdditiveScore.apply(q, k, v.to(compute), query_chunk_size(q, k, memory_budget))  # (N, Lq, Lk)
    return scores.view(*lead, lq, lk).to(dtype)


def query_chunk_size(q: Tensor, k: Tensor, memory_budget: int) -> int:
    """Queries per block so one ``(N, chunk, Lk, H)`` block fits in ``memory_budget`` bytes."""
    row_bytes = q.shape[0] * k.shape[1] * q.shape[2] * q.element_size()  # one query's (N, Lk, H)
    return max(1, min(q.shape[1], memory_budget // max(1, row_bytes)))


def materialised_additive_score(projected_query: Tensor, projected_keys: Tensor, v: Tensor) -> Tensor:
    """The textbook form, the plain path the chunked one is tested against: the whole
    ``(..., Lq, Lk, H)`` tanh at once, plain autograd."""
    hidden = torch.tanh(projected_query.unsqueeze(-2) + projected_keys.unsqueeze(-3))  # (..., Lq, Lk, H)
    return hidden @ v  # (..., Lq, Lk)


def _sigmoid_blocks(q: Tensor, k: Tensor, chunk: int):
    """Yield ``(queries, s)`` per block of queries, s = sigmoid(2q'_i + 2k'_j) ``(N, c, Lk, H)``.

    Every block is written into one workspace: a fresh multi-MiB tensor per block costs
    more in page faults than the addition itself.
    """
    n, lq, hidden = q.shape
    lk = k.shape[1]
    workspace = q.new_empty(n * chunk * lk * hidden)
    for start in range(0, lq, chunk):
        q_block = q[:, start : start + chunk]  # (N, c, H)
        s = workspace[: q_block.numel() * lk].view(n, q_block.shape[1], lk, hidden)
        torch.add(2 * q_block.unsqueeze(2), k.unsqueeze(1), alpha=2, out=s).sigmoid_()
        yield slice(start, start + chunk), s


class _ChunkedAdditiveScore(torch.autograd.Function):
    """e = v^T tanh(q'_i + k'_j) over blocks of ``chunk`` queries, recomputed in backward.

    With t = tanh(q'_i + k'_j) = 2s - 1, s = sigmoid(2q'_i + 2k'_j), 1 - t^2 = 4 s (1 - s),
    and the upstream gradient g_ij:
        e_ij   = (2v)^T s_ij - sum_h v_h
        dv     = sum_ij g_ij t_ij = 2 sum_ij g_ij s_ij - sum_ij g_ij
        dq'_i  = 4v * sum_j g_ij s_ij (1 - s_ij)
        dk'_j  = 4v * sum_i g_ij s_ij (1 - s_ij)
    Shapes: q ``(N, Lq, H)``, k ``(N, Lk, H)``, v ``(H,)``, scores ``(N, Lq, Lk)``.
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, chunk: int) -> Tensor:
        scores = q.new_empty(q.shape[0], q.shape[1], k.shape[1])  # (N, Lq, Lk)
        v2 = 2 * v
        for queries, s in _sigmoid_blocks(q, k, chunk):
            scores[:, queries] = s @ v2  # (N, c, Lk)
        ctx.save_for_backward(q, k, v)
        ctx.chunk = chunk
        return scores.sub_(v.sum())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_scores: Tensor):
        q, k, v = ctx.saved_tensors
        sum_gs_q = torch.empty_like(q)  # sum_j g_ij s_ij (1 - s_ij)
        sum_gs_k = torch.zeros_like(k)  # sum_i g_ij s_ij (1 - s_ij)
        sum_gs = torch.zeros_like(v)  # sum_ij g_ij s_ij
        for queries, s in _sigmoid_blocks(q, k, ctx.chunk):
            g = grad_scores[:, queries].unsqueeze(-1)  # (N, c, Lk, 1)
            sum_gs += (g.reshape(1, -1) @ s.view(-1, s.shape[-1])).view(-1)  # (H,)
            # g s (1 - s) in place, with the fused kernel of PyTorch's own sigmoid derivative.
            torch.ops.aten.sigmoid_backward.grad_input(g, s, grad_input=s)
            sum_gs_q[:, queries] = s.sum(dim=2)  # (N, c, H)
            sum_gs_k += s.sum(dim=1)  # (N, Lk, H)
        v4 = 4 * v
        return sum_gs_q * v4, sum_gs_k * v4, 2 * sum_gs - grad_scores.sum(), None
