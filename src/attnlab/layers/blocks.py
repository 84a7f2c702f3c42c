"""Transformer blocks: a self-attention block (self-attention + FFN: the encoder block of
the Transformer, BERT and ViT, and with ``causal=True`` GPT's block) and a decoder block
(masked self-attention + cross-attention + FFN), each sub-layer wrapped in a residual
connection and a LayerNorm.

    post-LN (Vaswani et al. 2017, BERT):      x = LN(x + Dropout(Sublayer(x)))
    pre-LN  (GPT-2, ViT; Xiong et al. 2020):  x = x + Dropout(Sublayer(LN(x)))

Blocks are built from parts: pass your own ``attention`` module (anything with MultiHeadAttention's call
signature) to swap the mechanism. A block passes its ``cache`` (a :class:`KVCache`, or the
functional :class:`PastKV`) to its self-attention and returns the layer's ``present``
keys/values.

Notation: B batch, L (Lq) target length, S source (memory) length, D d_model, H heads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

from attnlab.attention.kv_cache import KVCache, PastKV
from attnlab.attention.multi_head import MultiHeadAttention
from attnlab.errors import AttnlabError
from attnlab.layers.feed_forward import FeedForward, get_activation


@dataclass
class BlockOutput:
    """``hidden (B, L, D)``; weights ``(B, H, L, Lk)`` when asked for, else None;
    ``present``: the self-attention's keys/values ``(B, Hkv, Lk, Dh)`` (past included)."""

    hidden: Tensor
    self_weights: Tensor | None = None
    cross_weights: Tensor | None = None
    present: tuple[Tensor, Tensor] | None = None


class Residual(nn.Module):
    """A sub-layer with its residual connection, dropout and LayerNorm (pre or post)."""

    def __init__(self, d_model: int, dropout: float, norm_first: bool, norm_eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, sublayer) -> tuple[Tensor, object]:
        """``sublayer(h) -> (y, extra)``; returns the new residual stream and ``extra``."""
        if self.norm_first:
            y, extra = sublayer(self.norm(x))
            return x + self.dropout(y), extra
        y, extra = sublayer(x)
        return self.norm(x + self.dropout(y)), extra


class TransformerBlock(nn.Module):
    """Self-attention (bidirectional, or causal) + feed-forward. ``x (B, L, D) -> (B, L, D)``."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        *,
        dropout: float = 0.1,
        attention_dropout: float | None = None,
        ffn_dropout: float | None = None,
        activation: str = "relu",
        norm_first: bool = False,
        norm_eps: float = 1e-5,
        attention: nn.Module | None = None,
    ):
        super().__init__()
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.self_attn = attention or MultiHeadAttention(d_model, num_heads, dropout=attention_dropout)
        self.ffn = FeedForward(d_model, d_ff, activation=activation, dropout=dropout if ffn_dropout is None else ffn_dropout)
        self.attn_residual = Residual(d_model, dropout, norm_first, norm_eps)
        self.ffn_residual = Residual(d_model, dropout, norm_first, norm_eps)

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
        cache: KVCache | PastKV | None = None,
    ) -> BlockOutput:
        def attend(h):
            out = self.self_attn(h, mask=mask, causal=causal, need_weights=need_weights, average_weights=False, cache=cache)
            return out.output, out

        x, attn = self.attn_residual(x, attend)
        x, _ = self.ffn_residual(x, lambda h: (self.ffn(h), None))
        return BlockOutput(x, self_weights=attn.weights, present=getattr(attn, "present", None))

    def forward_first(self, x: Tensor, n: int, *, mask: Tensor | None = None) -> Tensor:
        """``forward(x).hidden[:, :n]`` at a fraction of the cost: only the first ``n``
        positions are queries (they still attend to all of ``x``); ``(B, L, D) -> (B, n, D)``.
        For a last block whose output is read at the class token only (ViT, BERT pooler)."""
        return self.forward_queries(x, slice(0, n), mask=mask)

    def forward_queries(self, x: Tensor, queries: slice, *, mask: Tensor | None = None) -> Tensor:
        """``forward(x).hidden[:, queries]``, only those positions computed as queries (they
        attend to all of ``x``, as ``mask (.., n, L)`` allows); ``(B, L, D) -> (B, n, D)``.
        GPT's last block when only the last position's logits are read (``slice(-1, None)``)."""
        r = self.attn_residual
        h = r.norm(x) if r.norm_first else x
        y = x[:, queries] + r.dropout(self.self_attn(h[:, queries], h, h, mask=mask).output)  # (B, n, D)
        y = y if r.norm_first else r.norm(y)
        y, _ = self.ffn_residual(y, lambda h: (self.ffn(h), None))
        return y


@dataclass
class EncoderConfig:
    """The shape of an encoder stack; BERT's and ViT's configs extend it."""

    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    activation: str = "gelu"
    dropout: float = 0.1
    attention_dropout: float = 0.1
    norm_eps: float = 1e-12
    labels: list[str] = field(default_factory=list)  # class names of a classifier head

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def check_sizes(self, *more: str) -> None:
        """Sizes (these and ``more`` fields) must be >= 1 and the activation known."""
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", *more):
            if getattr(self, name) < 1:
                raise AttnlabError(f"{type(self).__name__}.{name} = {getattr(self, name)}; expected >= 1")
        get_activation(self.activation)


def encoder_stack(
    config: EncoderConfig, *, norm_first: bool, attention: Callable[[], nn.Module] | None = None,
    cross_attention: bool = False,
) -> nn.ModuleList:
    """``config.num_layers`` blocks, without dropout inside the feed-forward network
    (as BERT and ViT); ``attention()`` builds each block's self-attention (default: a
    :class:`MultiHeadAttention`); ``cross_attention``: :class:`DecoderBlock` s (BERT as
    the decoder of an encoder-decoder)."""
    c = config
    parts = dict(dropout=c.dropout, attention_dropout=c.attention_dropout, ffn_dropout=0.0, activation=c.activation,
                 norm_first=norm_first, norm_eps=c.norm_eps)

    def block() -> nn.Module:
        own = attention() if attention is not None else None
        if cross_attention:
            return DecoderBlock(c.hidden_size, c.num_heads, c.intermediate_size, **parts, self_attention=own)
        return TransformerBlock(c.hidden_size, c.num_heads, c.intermediate_size, **parts, attention=own)

    return nn.ModuleList(block() for _ in range(c.num_layers))


def run_encoder(
    blocks: nn.ModuleList, x: Tensor, *, mask: Tensor | None = None, causal: bool = False,
    need_weights: bool = False,
) -> tuple[Tensor, list[Tensor]]:
    """Run ``x (B, L, D)`` through ``blocks`` in order (Transformer encoder, BERT, ViT).

    Returns the last hidden state and, when asked, each block's weights ``(B, H, L, L)``
    (an empty list when not).
    """
    weights = []
    for block in blocks:
        out = block(x, mask=mask, causal=causal, need_weights=need_weights)
        x = out.hidden
        if need_weights:
            weights.append(out.self_weights)
    return x, weights


class DecoderBlock(nn.Module):
    """Masked self-attention + cross-attention to ``memory (B, S, D)`` + feed-forward."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        *,
        dropout: float = 0.1,
        attention_dropout: float | None = None,
        ffn_dropout: float | None = None,
        activation: str = "relu",
        norm_first: bool = False,
        norm_eps: float = 1e-5,
        self_attention: nn.Module | None = None,
        cross_attention: nn.Module | None = None,
    ):
        super().__init__()
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.self_attn = self_attention or MultiHeadAttention(d_model, num_heads, dropout=attention_dropout)
        self.cross_attn = cross_attention or MultiHeadAttention(d_model, num_heads, dropout=attention_dropout)
        self.ffn = FeedForward(d_model, d_ff, activation=activation, dropout=dropout if ffn_dropout is None else ffn_dropout)
        self.self_residual = Residual(d_model, dropout, norm_first, norm_eps)
        self.cross_residual = Residual(d_model, dropout, norm_first, norm_eps)
        self.ffn_residual = Residual(d_model, dropout, norm_first, norm_eps)

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None,
        *,
        self_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        causal: bool = True,
        need_weights: bool = False,
        self_cache: KVCache | PastKV | None = None,
        cross_cache: KVCache | PastKV | None = None,
    ) -> BlockOutput:
        """``memory (B, S, D)``; None: the keys of a filled ``cross_cache``, and without one
        no cross-attention at all (HF's BERT decoder called without encoder states)."""
        def self_attend(h):
            out = self.self_attn(
                h, mask=self_mask, causal=causal, need_weights=need_weights, average_weights=False, cache=self_cache
            )
            return out.output, out

        def cross_attend(h):
            out = self.cross_attn(
                h, memory, mask=memory_mask, need_weights=need_weights, average_weights=False, cache=cross_cache
            )
            return out.output, out.weights

        x, attn = self.self_residual(x, self_attend)
        cross_weights = None
        if memory is not None or cross_cache is not None:
            x, cross_weights = self.cross_residual(x, cross_attend)
        x, _ = self.ffn_residual(x, lambda h: (self.ffn(h), None))
        return BlockOutput(x, self_weights=attn.weights, cross_weights=cross_weights, present=getattr(attn, "present", None))
