"""Multi-head attention (Vaswani et al. 2017), with grouped/multi-query heads, a score bias
and a KV cache.

    head_h = softmax(Q W^Q_h (K W^K_h)^T * scale + B_h + M) V W^V_h      h = 1..H
    MHA(Q, K, V) = concat(head_1, ..., head_H) W^O

The layer takes its parts instead of being subclassed (as torchtune and x-transformers):

- a **score bias** B ``(B, H, Lq, Lk)``: relative positions (Shaw et al. 2018, BERT's
  ``relative_key``), ALiBi (Press et al. 2022), ... — a constructor part ``score_bias``
  (a module or function ``(q, k) -> B`` of the per-head queries/keys, e.g.
  :class:`~attnlab.attention.positional.RelativePositionBias`) and/or a per-call
  ``score_bias`` (a float tensor or such a function). It joins the mask through the one
  mask convention (:func:`~attnlab.attention.masks.combine_masks`: a float mask, which
  the fused kernel takes as its ``attn_mask``); without one the path is unchanged;
- **rotary positions** (``rotary``), applied to per-head queries and keys;
- a **KV cache** ``cache``: the functional :class:`~attnlab.attention.kv_cache.PastKV`
  (past keys/values in; the output's ``present`` out) or the stateful
  :class:`~attnlab.attention.kv_cache.KVCache` (the same protocol, kept in place).

Grouped-query attention (Ainslie et al. 2023) shares each key/value head among
H / Hkv query heads; Hkv = 1 is multi-query attention (Shazeer 2019).

``nn.MultiheadAttention``'s two extra keys are supported too: ``add_bias_kv`` appends a
learned key/value pair (b_k, b_v) and ``add_zero_attn`` a zero key/value pair after the
keys, so every query may attend to them (they are never cached: each call appends them).

Notation: B batch, Lq queries, Lk keys, E embed_dim, H heads, Hkv key/value heads,
Dh = E / H head width.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.attention.core import AttentionOutput, check_module_dtype, scaled_dot_product_attention
from attnlab.attention.kv_cache import KVCache, PastKV
from attnlab.attention.masks import causal_mask, check_mask, combine_masks
from attnlab.attention.positional import RotaryEmbedding
from attnlab.errors import AttnlabError
from attnlab.kernels.linear import Linear, linear

# a float tensor broadcastable to (B, H, Lq, Lk), or a function of the per-head queries
# q (B, H, Lq, Dh) and keys k (B, Hkv, Lk, Dh) (cache included) returning one
ScoreBias = Tensor | Callable[[Tensor, Tensor], Tensor]
Cache = KVCache | PastKV


@dataclass
class MultiHeadOutput(AttentionOutput):
    """:class:`AttentionOutput` plus ``present``: the keys and values ``(B, Hkv, Lk, Dh)``
    attended to, past ones included (after rotary, before the extra keys of
    ``add_bias_kv``/``add_zero_attn``): the next call's ``cache=PastKV(*present)``."""

    present: tuple[Tensor, Tensor] | None = None


class MultiHeadAttention(nn.Module):
    """Self or cross multi-head attention; batch first.

    Args:
        embed_dim: E, width of queries and of the output.
        num_heads: H.
        kdim, vdim: widths of keys and values (default E).
        bias: biases in the four projections.
        dropout: dropout on the attention weights (training only).
        num_kv_heads: Hkv for grouped/multi-query attention (default H).
        rotary: a :class:`RotaryEmbedding` applied to per-head queries and keys.
        scale: the factor of the scores (default ``Dh ** -0.5``).
        score_bias: a module or function ``(q, k) -> (B, H, Lq, Lk)`` added to every call's
            scores (relative positions: :class:`~attnlab.attention.positional.RelativePositionBias`).
        add_bias_kv: append a learned key and value (``bias_k``, ``bias_v`` ``(1, 1, Hkv*Dh)``).
        add_zero_attn: append a zero key and value (after the learned ones).

    Shapes:
        query ``(B, Lq, E)``, key ``(B, Lk, kdim)``, value ``(B, Lk, vdim)``;
        output ``(B, Lq, E)``; weights ``(B, Lq, Lk)`` averaged over heads or ``(B, H, Lq, Lk)``
        (Lk + 1 per extra key: the appended keys come last).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        kdim: int | None = None,
        vdim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        num_kv_heads: int | None = None,
        rotary: RotaryEmbedding | None = None,
        scale: float | None = None,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        score_bias: Callable[[Tensor, Tensor], Tensor] | None = None,
    ):
        super().__init__()
        if not 0.0 <= dropout <= 1.0:
            raise AttnlabError(f"dropout must be in [0, 1], got {dropout}")
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_heads <= 0 or embed_dim % num_heads:
            raise AttnlabError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if num_kv_heads <= 0 or num_heads % num_kv_heads:
            raise AttnlabError(f"num_heads ({num_heads}) must be divisible by num_kv_heads ({num_kv_heads})")
        self.embed_dim, self.num_heads, self.num_kv_heads = embed_dim, num_heads, num_kv_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.dropout = dropout
        self.q_proj = Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = Linear(self.kdim, num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = Linear(self.vdim, num_kv_heads * self.head_dim, bias=bias)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        self.rotary = rotary
        self.scale = scale
        kv_width = num_kv_heads * self.head_dim
        self.bias_k = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, 1, kv_width))) if add_bias_kv else None
        self.bias_v = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, 1, kv_width))) if add_bias_kv else None
        self.add_zero_attn = add_zero_attn
        self.score_bias = score_bias  # a module is registered (its weights are the layer's)

    def _split_heads(self, x: Tensor, heads: int) -> Tensor:
        b, length, _ = x.shape
        return x.view(b, length, heads, self.head_dim).transpose(1, 2)  # (B, heads, L, Dh)

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        for name, t, width in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if t.dim() != 3 or t.shape[-1] != width:
                raise AttnlabError(f"{name} must have shape (B, L, {width}), got {tuple(t.shape)}")
        check_module_dtype(self, query=query, key=key, value=value)
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise AttnlabError(
                f"query (B, Lq, .), key and value (B, Lk, .) disagree: {tuple(query.shape)}, "
                f"{tuple(key.shape)}, {tuple(value.shape)}"
            )

    def _project(self, query: Tensor, key: Tensor | None, value: Tensor | None, cache: Cache | None):
        """Per-head ``q (B, H, Lq, Dh)``, ``k, v (B, Hkv, Lk, Dh)`` before rotary and cache.

        Self-attention packs the three projections into one matrix product (1.5x faster
        than three on the CPU); a filled static cache skips the key/value projections.
        """
        if cache is not None and cache.static and cache.is_filled:
            return self._split_heads(self.q_proj(query), self.num_heads), None, None
        if key is None and value is None:
            weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
            bias = None if self.q_proj.bias is None else torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
            kv_width = self.num_kv_heads * self.head_dim
            q, k, v = linear(query, weight, bias).split([self.embed_dim, kv_width, kv_width], dim=-1)
            return self._split_heads(q, self.num_heads), self._split_heads(k, self.num_kv_heads), self._split_heads(v, self.num_kv_heads)
        q = self._split_heads(self.q_proj(query), self.num_heads)
        kv = self.keys_values(query if key is None else key, value)
        return q, kv.key, kv.value

    def keys_values(self, key: Tensor, value: Tensor | None = None) -> PastKV:
        """The per-head keys and values ``(B, Hkv, Lk, Dh)`` of ``key``/``value`` ``(B, Lk, .)``
        (``value`` defaults to ``key``), as a static cache: cross-attention keys projected
        once (no rotary) for every later call with ``cache=`` them."""
        value = key if value is None else value
        k, v = self.k_proj(key), self.v_proj(value)
        return PastKV(self._split_heads(k, self.num_kv_heads), self._split_heads(v, self.num_kv_heads), static=True)

    def _position_and_cache(self, q: Tensor, k: Tensor | None, v: Tensor | None, cache: Cache | None):
        """Apply rotary positions (offset by the cached length) and append to the cache
        (a :class:`PastKV` returns the present keys/values; a :class:`KVCache` keeps them too)."""
        if k is None:  # a filled static cache
            return q, cache.key, cache.value
        offset = cache.length if cache is not None and not cache.static else 0
        if self.rotary is not None:
            q = self.rotary(q, torch.arange(offset, offset + q.shape[2], device=q.device))
            k = self.rotary(k, torch.arange(offset, offset + k.shape[2], device=k.device))
        if cache is not None:
            k, v = cache.update(k, v)
        return q, k, v

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
        average_weights: bool = True,
        cache: Cache | None = None,
        score_bias: ScoreBias | None = None,
    ) -> MultiHeadOutput:
        """Attend from ``query`` to ``key``/``value`` (self-attention when key is None).

        ``mask`` broadcasts to ``(B, H, Lq, Lk)`` where Lk counts cached keys too; with a
        growing ``cache``, ``causal`` aligns the mask bottom-right (the new tokens come last).
        ``score_bias`` (a float tensor or a function ``(q, k) -> bias``) is added to the
        scores, after the layer's own ``score_bias`` part.
        """
        keys_in = query if key is None else key
        self._check_inputs(query, keys_in, keys_in if value is None else value)
        b, lq, _ = query.shape
        q, k, v = self._position_and_cache(*self._project(query, key, value, cache), cache)  # (B, H(kv), L, Dh)
        present = (k, v)
        if mask is not None:
            check_mask(mask, (b, self.num_heads, lq, k.shape[2]))
        for bias in (self.score_bias, score_bias):
            if bias is not None:
                bias = bias(q, k) if callable(bias) else bias
                check_mask(bias, (b, self.num_heads, lq, k.shape[2]), "score_bias")
                mask = combine_masks(mask, bias.to(q.dtype))  # a float mask: the bias, -inf where blocked
        if self.bias_k is not None or self.add_zero_attn:
            k, v, mask, causal = self._append_extra_keys(k, v, mask, causal, lq)
        if self.num_kv_heads != self.num_heads:  # share each kv head among H / Hkv query heads
            groups = self.num_heads // self.num_kv_heads
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, H, Lk, Dh)
        attn = scaled_dot_product_attention(
            q, k, v, mask=mask, causal=causal, need_weights=need_weights, average_weights=average_weights,
            dropout_p=self.dropout if self.training else 0.0, scale=self.scale,
        )  # weights (B, H, Lq, Lk), or (B, Lq, Lk) averaged over the heads
        out = self.out_proj(attn.output.transpose(1, 2).reshape(b, lq, self.embed_dim))  # (B, Lq, E)
        return MultiHeadOutput(out, attn.weights, present=present)

    def _append_extra_keys(self, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool, lq: int):
        """Append (b_k, b_v) and/or a zero pair to ``k, v (B, Hkv, Lk, Dh)``; every query may
        attend to them, so the mask gets allowed columns (the causal part made explicit first)."""
        b, lk = k.shape[0], k.shape[2]
        new_k, new_v = [k], [v]
        if self.bias_k is not None:
            heads_view = (1, self.num_kv_heads, 1, self.head_dim)  # (1, 1, Hkv*Dh) -> (1, Hkv, 1, Dh)
            new_k.append(self.bias_k.view(heads_view).expand(b, -1, -1, -1).to(k.dtype))
            new_v.append(self.bias_v.view(heads_view).expand(b, -1, -1, -1).to(v.dtype))
        if self.add_zero_attn:
            new_k.append(k.new_zeros(b, k.shape[1], 1, k.shape[3]))
            new_v.append(v.new_zeros(b, v.shape[1], 1, v.shape[3]))
        extra = len(new_k) - 1
        if causal:
            mask = combine_masks(mask, causal_mask(lq, lk, device=k.device))
        if mask is not None:
            mask = mask.expand(*mask.shape[:-1], lk)
            allowed = torch.ones if mask.dtype == torch.bool else torch.zeros
            mask = torch.cat([mask, allowed(*mask.shape[:-1], extra, dtype=mask.dtype, device=mask.device)], -1)
        return torch.cat(new_k, dim=2), torch.cat(new_v, dim=2), mask, False  # (B, Hkv, Lk + extra, Dh)

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy an ``nn.MultiheadAttention``'s weights: equal outputs, weights and gradients
        (``add_bias_kv`` and ``add_zero_attn`` included)."""
        e = module.embed_dim
        has_bias = module.in_proj_bias is not None
        mha = cls(e, module.num_heads, kdim=module.kdim, vdim=module.vdim, bias=has_bias, dropout=module.dropout,
                  add_bias_kv=module.bias_k is not None, add_zero_attn=module.add_zero_attn)
        mha = mha.to(device=module.out_proj.weight.device, dtype=module.out_proj.weight.dtype)
        with torch.no_grad():
            if module._qkv_same_embed_dim:
                weights = module.in_proj_weight.chunk(3)
            else:
                weights = (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)
            biases = module.in_proj_bias.chunk(3) if has_bias else (None, None, None)
            for proj, w, b in zip((mha.q_proj, mha.k_proj, mha.v_proj), weights, biases):
                proj.weight.copy_(w)
                if b is not None:
                    proj.bias.copy_(b)
            if module.bias_k is not None:
                mha.bias_k.copy_(module.bias_k)
                mha.bias_v.copy_(module.bias_v)
            mha.out_proj.weight.copy_(module.out_proj.weight)
            if has_bias:
                mha.out_proj.bias.copy_(module.out_proj.bias)
        return mha
