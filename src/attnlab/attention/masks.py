"""The one mask convention of attnlab, and every conversion into it.

A **boolean** mask is ``True`` where attention is *allowed* (the convention of
``torch.nn.functional.scaled_dot_product_attention``). A **float** mask is *added* to
the scores (``-inf`` blocks). Either broadcasts to ``(B, H, Lq, Lk)``.

``torch.nn.MultiheadAttention`` uses the opposite boolean meaning (``True`` = blocked);
:func:`from_torch_masks` converts, so nothing else in attnlab has to think about it.

Notation: B batch, H heads, Lq queries, Lk keys.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.errors import AttnlabError


def mask_from_lengths(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Key mask from sequence lengths: ``(B,) -> (B, 1, 1, Lk)``, True on real positions."""
    if lengths.dim() != 1:
        raise AttnlabError(f"lengths must have shape (B,), got {tuple(lengths.shape)}")
    max_len = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(max_len, device=lengths.device)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]


def mask_from_padding(is_padding: Tensor) -> Tensor:
    """Key mask from padding flags: ``(B, Lk)`` True at padding ``-> (B, 1, 1, Lk)`` True where allowed."""
    if is_padding.dim() != 2 or is_padding.dtype != torch.bool:
        raise AttnlabError(f"is_padding must be a bool tensor of shape (B, Lk), got {is_padding.dtype} {tuple(is_padding.shape)}")
    return ~is_padding[:, None, None, :]


def causal_mask(num_queries: int, num_keys: int | None = None, device=None) -> Tensor:
    """Lower-triangular mask ``(Lq, Lk)``, aligned to the bottom-right.

    With ``Lq < Lk`` (decoding with a cache of ``Lk - Lq`` earlier keys) query ``i`` is the
    token at position ``Lk - Lq + i`` and may see keys ``0 .. Lk - Lq + i``.
    """
    num_keys = num_queries if num_keys is None else num_keys
    if num_queries > num_keys:
        raise AttnlabError(f"causal attention needs Lq <= Lk, got Lq={num_queries}, Lk={num_keys}")
    return torch.ones(num_queries, num_keys, dtype=torch.bool, device=device).tril(num_keys - num_queries)


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Intersect masks: booleans are AND-ed; if any is a float mask, the result is a float mask."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    if all(m.dtype == torch.bool for m in present):
        out = present[0]
        for m in present[1:]:
            out = out & m
        return out
    dtype = next(m.dtype for m in present if m.dtype != torch.bool)
    out = None
    for m in present:
        m = to_float_mask(m, dtype)
        out = m if out is None else out + m
    return out


def to_float_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Bool (True = allowed) -> additive float mask (0 allowed, -inf blocked); floats pass through."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))
    return mask.to(dtype)


def from_torch_masks(
    attn_mask: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    num_heads: int = 1,
) -> Tensor | None:
    """Convert ``nn.MultiheadAttention`` masks (bool True = *blocked*) into attnlab's convention.

    ``attn_mask``: ``(Lq, Lk)`` or ``(B*H, Lq, Lk)``; ``key_padding_mask``: ``(B, Lk)``.
    Returns a mask broadcastable to ``(B, H, Lq, Lk)``.
    """
    converted = []
    if attn_mask is not None:
        if attn_mask.dim() == 3:  # (B*H, Lq, Lk) -> (B, H, Lq, Lk)
            attn_mask = attn_mask.view(-1, num_heads, *attn_mask.shape[-2:])
        elif attn_mask.dim() != 2:
            raise AttnlabError(f"attn_mask must be (Lq, Lk) or (B*H, Lq, Lk), got {tuple(attn_mask.shape)}")
        converted.append(~attn_mask if attn_mask.dtype == torch.bool else attn_mask)
    if key_padding_mask is not None:
        if key_padding_mask.dim() != 2:
            raise AttnlabError(f"key_padding_mask must be (B, Lk), got {tuple(key_padding_mask.shape)}")
        kpm = key_padding_mask[:, None, None, :]  # (B, 1, 1, Lk)
        converted.append(~kpm if kpm.dtype == torch.bool else kpm)
    return combine_masks(*converted)


def check_mask(mask: Tensor, target_shape: tuple[int, ...], name: str = "mask") -> None:
    """Raise a clear error unless ``mask`` broadcasts to ``target_shape`` (e.g. (B, H, Lq, Lk))."""
    if not (mask.dtype == torch.bool or mask.is_floating_point()):
        raise AttnlabError(f"{name} must be bool (True = allowed) or float (added to scores), got {mask.dtype}")
    if mask.dim() > len(target_shape):
        raise AttnlabError(f"{name} has shape {tuple(mask.shape)}, which does not broadcast to {target_shape}")
    for have, want in zip(reversed(mask.shape), reversed(target_shape)):
        if have not in (1, want):
            raise AttnlabError(
                f"{name} has shape {tuple(mask.shape)}, which does not broadcast to {target_shape} (B, H, Lq, Lk)"
            )


def prepare_mask(mask: Tensor | None, target_shape: tuple[int, ...], dtype: torch.dtype) -> Tensor | None:
    """The one place a mask is checked and converted before attention uses it: raise a
    clear error unless it broadcasts to ``target_shape``; a float mask takes ``dtype`` (the
    scores'), so an fp32 mask on fp64 scores blocks exactly what it blocks in fp32."""
    if mask is None:
        return None
    check_mask(mask, target_shape)
    return mask if mask.dtype == torch.bool else mask.to(dtype)
