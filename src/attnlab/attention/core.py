"""The shared core: score -> mask -> normalize -> weighted sum.

Every mechanism in attnlab is a *score function* feeding :func:`attend`:

    e_ij  = score(q_i, k_j)                     (dot, scaled, general, concat, additive, ...)
    e_ij  = e_ij + M_ij      (float mask)  or  -inf where M_ij is False (bool mask)
    a_ij  = normalize_j(e_ij)                   (softmax, sparsemax, hardmax, sample)
    o_i   = sum_j a_ij v_j

and :func:`scaled_dot_product_attention` is the special case score = q.k / sqrt(d)
(Vaswani et al. 2017), with a fused fast path from PyTorch when weights are not needed.

Notation: B batch, H heads, Lq queries, Lk keys, D query/key width, Dv value width.
Any number of leading batch dims ``...`` is accepted; masks broadcast to ``(..., Lq, Lk)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.attention.masks import causal_mask, combine_masks, prepare_mask, to_float_mask
from attnlab.attention.normalizers import get_normalizer, sample
from attnlab.errors import AttnlabError
from attnlab.kernels.backend import (
    KERNEL_WEIGHTS_PATHS,
    SELF_ATTENTION_PATHS,
    choose_path,
    self_attention,
)
from attnlab.kernels.empty import empty_attention, is_empty
from attnlab.kernels.fused_weights import (
    fused_attention_with_weights,
    head_mean,
    kernel_attention_with_weights,
)


@dataclass
class AttentionOutput:
    """What every attention function and module returns.

    ``output`` ``(..., Lq, Dv)``; ``weights`` ``(..., Lq, Lk)`` or ``None`` unless asked for;
    ``log_prob`` ``(..., Lq)`` only for sampled (hard, stochastic) attention.
    Unpacks like a pair: ``out, weights = attn(...)``.
    """

    output: Tensor
    weights: Tensor | None = None
    log_prob: Tensor | None = None

    def __iter__(self):
        yield self.output
        yield self.weights

    def _replace_output(self, output: Tensor) -> AttentionOutput:
        return AttentionOutput(output, self.weights, self.log_prob)


def apply_mask(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Blocked (False) entries become ``-inf``; a float mask is added."""
    if mask is None:
        return scores
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask, float("-inf"))
    return scores + mask.to(scores.dtype)  # a no-op after prepare_mask


def open_empty_rows(mask: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """Let queries with no allowed key see every key, and say which rows those were.

    Returns ``(mask, has_keys)``; ``has_keys`` ``(..., Lq, 1)`` is None when every row has
    an allowed key. Weights of the opened rows are zeroed afterwards, so they get a zero
    output and zero (finite) gradients: the NaN of softmax over nothing never appears.
    A traced graph (``torch.compile``, ``torch.export``) cannot branch on that, so it
    always opens: the same numbers, since opening no row changes nothing.
    """
    if mask is None:
        return None, None
    allowed = mask if mask.dtype == torch.bool else mask > float("-inf")
    has_keys = allowed.any(dim=-1, keepdim=True)
    if not torch.compiler.is_compiling() and bool(has_keys.all()):
        return mask, None
    if mask.dtype == torch.bool:
        return mask | ~has_keys, has_keys
    return mask.masked_fill(~has_keys, 0.0), has_keys


def attend(
    scores: Tensor,
    value: Tensor,
    *,
    mask: Tensor | None = None,
    normalizer: str = "softmax",
    dropout_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> AttentionOutput:
    """Mask, normalize and take the weighted sum of ``value``.

    Args:
        scores: ``(..., Lq, Lk)`` raw scores e_ij.
        value:  ``(..., Lk, Dv)``.
        mask:   bool (True = allowed) or float (added), broadcastable to ``(..., Lq, Lk)``.
        normalizer: ``"softmax"`` | ``"sparsemax"`` | ``"hardmax"`` | ``"sample"``.
        dropout_p: dropout on the weights before the sum (returned weights are pre-dropout).
    Returns:
        AttentionOutput with ``output (..., Lq, Dv)`` and ``weights (..., Lq, Lk)``.
    """
    _check_scores_and_values(scores, value)
    check_dropout_and_scale(dropout_p)
    mask = prepare_mask(mask, tuple(scores.shape), scores.dtype)
    mask, has_keys = open_empty_rows(mask)
    scores = apply_mask(scores, mask)
    log_prob = None
    if normalizer == "sample":
        weights, log_prob = sample(scores, generator)
    else:
        weights = get_normalizer(normalizer)(scores)
    if has_keys is not None:
        weights = weights.masked_fill(~has_keys, 0.0)
        log_prob = None if log_prob is None else log_prob.masked_fill(~has_keys.squeeze(-1), 0.0)
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    output = dropped.to(value.dtype) @ value  # (..., Lq, Dv)
    return AttentionOutput(output, weights, log_prob)


def attend_step(
    scores: Tensor,
    values: Tensor,
    mask: Tensor | None,
    normalizer: str = "softmax",
    generator: torch.Generator | None = None,
) -> AttentionOutput:
    """:func:`attend` for one decoder step (one query per batch element), as the RNN
    decoder's mechanisms take it: ``scores (B, Lk)``, ``values (B, Lk, Dv)``, ``mask (B, Lk)``
    -> output ``(B, Dv)``, weights ``(B, Lk)`` (``log_prob (B,)`` when sampling)."""
    query_mask = None if mask is None else mask[:, None, :]  # (B, 1, Lk)
    out = attend(scores[:, None, :], values, mask=query_mask, normalizer=normalizer, generator=generator)
    log_prob = None if out.log_prob is None else out.log_prob[:, 0]
    return AttentionOutput(out.output[:, 0], out.weights[:, 0], log_prob)


def weighted_sum(weights: Tensor, values: Tensor) -> Tensor:
    """``c = sum_j a_j v_j`` for one step's weights ``(B, Lk)`` that did not come from
    :func:`attend_step` (monotonic, local-p, straight-through hard attention): ``(B, Dv)``."""
    return (weights[:, None, :].to(values.dtype) @ values)[:, 0]  # (B, 1, Lk) @ (B, Lk, Dv) -> (B, Dv)


def check_module_dtype(module: torch.nn.Module, **inputs: Tensor | None) -> None:
    """Each input must be a floating-point tensor of ``module``'s parameter dtype (any
    floating dtype under autocast, which casts them, or for a module without parameters):
    one clear error instead of torch's raw matmul error. ``None`` inputs are skipped."""
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), None)
    for name, t in inputs.items():
        if t is None:
            continue
        if not t.is_floating_point() or (
            dtype is not None and t.dtype != dtype and not torch.is_autocast_enabled(t.device.type)
        ):
            raise AttnlabError(f"{name} must be a floating-point tensor of the module's dtype {dtype}, got {t.dtype}")


def check_qkv(query: Tensor, key: Tensor, value: Tensor) -> None:
    """Clear errors for mismatched shapes, dtypes and devices of q, k, v."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.dim() < 2:
            raise AttnlabError(f"{name} must have shape (..., L, D), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise AttnlabError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if query.shape[-1] != key.shape[-1]:
        raise AttnlabError(f"query and key must share the last dim D, got {query.shape[-1]} and {key.shape[-1]}")
    if key.shape[-2] != value.shape[-2]:
        raise AttnlabError(f"key and value must have the same length Lk, got {key.shape[-2]} and {value.shape[-2]}")
    if not (query.shape[:-2] == key.shape[:-2] == value.shape[:-2]):
        raise AttnlabError(
            f"query, key and value must share their batch dims (..., L, D), got {tuple(query.shape)}, "
            f"{tuple(key.shape)}, {tuple(value.shape)}"
        )
    if not (query.dtype == key.dtype == value.dtype):
        raise AttnlabError(f"query, key, value must share a dtype, got {query.dtype}, {key.dtype}, {value.dtype}")
    if not (query.device == key.device == value.device):
        raise AttnlabError(f"query, key, value must be on one device, got {query.device}, {key.device}, {value.device}")


def _check_scores_and_values(scores: Tensor, value: Tensor) -> None:
    for name, t in (("scores", scores), ("value", value)):
        if t.dim() < 2 or not t.is_floating_point():
            raise AttnlabError(f"{name} must be a floating-point tensor (..., L, D), got {t.dtype} {tuple(t.shape)}")
    try:
        torch.broadcast_shapes(scores.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise AttnlabError(
            f"scores (..., Lq, Lk) and value (..., Lk, Dv) have batch dims that do not broadcast: "
            f"{tuple(scores.shape)} and {tuple(value.shape)}"
        ) from None
    if scores.shape[-1] != value.shape[-2]:
        raise AttnlabError(f"scores (..., Lq, Lk) and value (..., Lk, Dv) disagree on Lk: "
                           f"{tuple(scores.shape)} and {tuple(value.shape)}")


def check_dropout_and_scale(dropout_p: float, scale: float | None = None) -> None:
    """Clear errors for a dropout probability outside [0, 1] and a scale that is not finite."""
    if not 0.0 <= float(dropout_p) <= 1.0:  # False for NaN too
        raise AttnlabError(f"dropout_p must be in [0, 1], got {dropout_p}")
    if scale is not None and not math.isfinite(float(scale)):
        raise AttnlabError(f"scale must be a finite number, got {scale}")


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    *,
    mask: Tensor | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
    need_weights: bool = False,
    average_weights: bool = False,
) -> AttentionOutput:
    """softmax(q k^T * scale + M) v, with scale = 1/sqrt(D) by default (Vaswani et al. 2017).

    Args:
        query ``(..., Lq, D)``, key ``(..., Lk, D)``, value ``(..., Lk, Dv)``.
        mask: bool (True = allowed) or float (added), broadcastable to ``(..., Lq, Lk)``.
        causal: query i sees keys up to its own position, aligned bottom-right when Lq < Lk.
        need_weights: also return the weights ``(..., Lq, Lk)``.
        average_weights: with ``need_weights``, the weights' mean over dimension -3 (the
        heads of ``(B, H, L, D)`` inputs; zeros for H = 0): ``(B, Lq, Lk)``, computed head by
        head on the fused paths (no per-head weights tensor).

    The path is chosen once, in :func:`attnlab.kernels.backend.choose_path`: without
    weights PyTorch's fused kernel (or, for causal or unmasked self-attention on the CPU, attnlab's C
    kernel of :mod:`attnlab.kernels.causal_kernel` in fp32 and
    :mod:`attnlab.kernels.causal_bmm` for short bf16 training); with weights (fp32, CPU,
    no dropout) the flash kernel -- or, for causal or unmasked self-attention, the C kernel --
    for the output and its log-sum-exp for the weights; otherwise the plain path of
    :func:`attend`, so the returned weights are the ones the output used (before dropout).
    Fully masked rows give zero output and zero weights. Any layout (strided views too) and
    any size: B, H, Lq or Lk = 0 give an empty result (zeros for Lk = 0) on every path. A
    float mask is converted to the query's dtype once (:func:`~attnlab.attention.masks.prepare_mask`).
    Raises ``AttnlabError`` (a ``ValueError``) for integer or mixed-dtype inputs, batch dims
    that differ, ``dropout_p`` outside ``[0, 1]`` and a scale that is not finite.
    """
    check_qkv(query, key, value)
    check_dropout_and_scale(dropout_p, scale)
    lq, lk = query.shape[-2], key.shape[-2]
    mask = prepare_mask(mask, tuple(query.shape[:-2]) + (lq, lk), query.dtype)
    if is_empty(query, key):  # B, H, Lq or Lk = 0: no path's kernel is needed (or safe)
        if causal and lq > lk:
            causal_mask(lq, lk)  # the same error as with keys
        out, weights = empty_attention(query, key, value)
        return AttentionOutput(out, _averaged(weights, average_weights) if need_weights else None)
    use_is_causal = causal and mask is None and bool(lq == lk)  # bool: a traced (symbolic) length decides here
    if causal and not use_is_causal:
        mask = combine_masks(mask, causal_mask(lq, lk, device=query.device))
    same_shape = query.shape[:-1] == key.shape[:-1] == value.shape[:-1]
    path = choose_path(query, key, value, need_weights, dropout_p, causal_only=use_is_causal and same_shape,
                       unmasked=same_shape and mask is None and not causal)
    if path in SELF_ATTENTION_PATHS:
        return AttentionOutput(self_attention(path, query, key, value, query.shape[-1] ** -0.5 if scale is None else scale))
    if path in KERNEL_WEIGHTS_PATHS:
        return AttentionOutput(*kernel_attention_with_weights(
            query, key, value, query.shape[-1] ** -0.5 if scale is None else scale, causal=path.startswith("causal"),
            average=average_weights))
    if path == "fused":
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=dropout_p, is_causal=use_is_causal, scale=scale
        )
        return AttentionOutput(out)
    if use_is_causal:
        mask = causal_mask(lq, lk, device=query.device)
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    if path == "fused_weights":
        float_mask = None if mask is None else to_float_mask(mask, query.dtype)  # (..., Lq, Lk)
        return AttentionOutput(*fused_attention_with_weights(query, key, value, float_mask, scale, average_weights))
    scores = (query * scale) @ key.transpose(-2, -1)  # (..., Lq, Lk)
    attn = attend(scores, value, mask=mask, dropout_p=dropout_p)
    return AttentionOutput(attn.output, _averaged(attn.weights, average_weights)) if need_weights \
        else AttentionOutput(attn.output)


def _averaged(weights: Tensor, average: bool) -> Tensor:
    """The weights, or their mean over the heads (dimension -3) with ``average``."""
    return head_mean(weights) if average else weights
