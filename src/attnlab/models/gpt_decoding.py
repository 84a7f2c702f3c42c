"""The fast one-token decoding step of a GPT (:meth:`GPT.decode_step`), in inference.

Batch-1 decoding of a small model is bound by per-operation overhead, not arithmetic:
each token runs ~60 small operations, and module dispatch, dropout and checks add
~200 more. Two paths compute the same thing as the blocks' forward (tests compare both
with the uncached forward and with HuggingFace):

- :func:`decode_blocks`: direct functional calls on weights gathered once per weights
  version (q/k/v packed, matrices laid out ``(in, out)``) — any batch, padding, dtype
  and device;
- the C step of :mod:`attnlab.kernels.native.gpt_decode` — one call per token for
  unpadded fp32 CPU rows of a GPT-2-shaped model (GELU-tanh, default score scale): one
  sequence, a batch of equal-length prompts or the beams of a beam search (every row at
  the same position, no attention mask), where it can be built (a C compiler;
  ``ATTNLAB_NATIVE=0`` turns it off).

:class:`DecodingCache` holds, per model, the gathered weights and the C step, rebuilt
when a parameter changed. A sequence's cached keys belong to the weights they were
computed with, so the weights are checked at a sequence's first step only: the
choice made then is kept by the sequence's :class:`DecodingCaches` (the list of
per-layer caches ``GPT.make_caches`` returns; the generic :class:`KVCache` knows no
model). Checking ~80 parameters costs a tenth of a decoding step of a 4-layer model.

Shapes: ``h (B, D)`` one token per row, caches ``(B, H, P, Dh)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.kv_cache import KVCache
from attnlab.kernels.native import gpt_decode as native
from attnlab.kernels.native.gpt_decode import NativeDecoder
from attnlab.layers.blocks import TransformerBlock


class LayerWeights(NamedTuple):
    """One block's tensors for decoding: matrices stored ``(in, out)``.

    A matrix-vector product reads the whole matrix once per token; with the weight laid
    out ``(in, out)`` (as GPT-2's own Conv1D stores it) ``addmm`` streams it ~15% faster
    than through ``nn.Linear``'s ``(out, in)`` view on this CPU, and the C step reads
    it row by row. The copies cost one more copy of the block weights while decoding.
    """

    norm1_weight: Tensor
    norm1_bias: Tensor
    qkv_weight_t: Tensor  # (D, 3D): q | k | v
    qkv_bias: Tensor  # (3D,)
    out_weight_t: Tensor  # (D, D)
    out_bias: Tensor
    norm2_weight: Tensor
    norm2_bias: Tensor
    fc1_weight_t: Tensor  # (D, F)
    fc1_bias: Tensor
    fc2_weight_t: Tensor  # (F, D)
    fc2_bias: Tensor
    scale: float | None  # the scores' factor; None: Dh ** -0.5

    @classmethod
    def of(cls, block: TransformerBlock) -> LayerWeights:
        attn, ffn = block.self_attn, block.ffn
        projections = (attn.q_proj, attn.k_proj, attn.v_proj)

        def t(weight: Tensor) -> Tensor:
            return weight.detach().t().contiguous()

        return cls(
            block.attn_residual.norm.weight.detach(), block.attn_residual.norm.bias.detach(),
            t(torch.cat([p.weight for p in projections])), torch.cat([p.bias for p in projections]).detach(),
            t(attn.out_proj.weight), attn.out_proj.bias.detach(),
            block.ffn_residual.norm.weight.detach(), block.ffn_residual.norm.bias.detach(),
            t(ffn.linear1.weight), ffn.linear1.bias.detach(), t(ffn.linear2.weight), ffn.linear2.bias.detach(),
            attn.scale,
        )


def decode_blocks(
    h: Tensor, mask: Tensor | None, caches: list[KVCache], layers: list[LayerWeights],
    heads: int, eps: float, activation: Callable[[Tensor], Tensor],
) -> Tensor:
    """The pre-LN blocks for one new token per row, ``h (B, D)`` -> ``(B, D)``, appending
    each layer's key/value to its cache; ``mask (B, 1, 1, P + 1)`` or ``None``."""
    b, d = h.shape
    for cache, w in zip(caches, layers):
        x = F.layer_norm(h, (d,), w.norm1_weight, w.norm1_bias, eps)
        qkv = torch.addmm(w.qkv_bias, x, w.qkv_weight_t).view(b, 3, heads, 1, d // heads)  # (B, 3, H, 1, Dh)
        k, v = cache.update(qkv[:, 1], qkv[:, 2])  # (B, H, P + 1, Dh)
        out = F.scaled_dot_product_attention(qkv[:, 0], k, v, attn_mask=mask, scale=w.scale)  # (B, H, 1, Dh)
        h = torch.addmm(w.out_bias, out.reshape(b, d), w.out_weight_t).add_(h)
        x = F.layer_norm(h, (d,), w.norm2_weight, w.norm2_bias, eps)
        hidden = activation(torch.addmm(w.fc1_bias, x, w.fc1_weight_t))  # (B, F)
        h = torch.addmm(w.fc2_bias, hidden, w.fc2_weight_t).add_(h)
    return h


class SequenceChoice(NamedTuple):
    """What a sequence's steps reuse: the weights version checked at its first step, the
    gathered weights, the C step (``None``: the PyTorch path) and the cache length then."""

    version: object
    layers: list[LayerWeights]
    native: NativeDecoder | None
    length: int


class DecodingCaches(list):
    """The per-layer :class:`KVCache` list of one decoding sequence, plus the choice
    :class:`DecodingCache` made at its first step; :meth:`reset` starts a new sequence."""

    def __init__(self, caches=()):
        super().__init__(caches)
        self.choice: SequenceChoice | None = None

    def reset(self) -> None:
        for cache in self:
            cache.reset()
        self.choice = None


class DecodingCache:
    """Per model: the decoding weights and the C step, rebuilt when a parameter changed
    (address or in-place version). Holds no state worth copying: a copied or pickled
    model starts with an empty one."""

    def __init__(self) -> None:
        self._version: list | None = None
        self._layers: list[LayerWeights] = []
        self._native: NativeDecoder | None = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def layers(self, model: nn.Module) -> list[LayerWeights]:
        """The current weights in decoding layout (rebuilt only when a parameter changed)."""
        version = [(p.data_ptr(), p._version) for p in model.parameters()]
        if version != self._version:
            with torch.no_grad():
                self._layers = [LayerWeights.of(block) for block in model.blocks]
            self._version, self._native = version, None
        return self._layers

    def for_sequence(self, model: nn.Module, caches: list[KVCache]) -> SequenceChoice:
        """The choice for this sequence, made at its first step (a plain list of caches:
        at every step); a sequence whose caches were emptied since gets a new one."""
        choice = getattr(caches, "choice", None)
        if choice is not None and choice.version is self._version and caches[0].length > choice.length:
            return choice
        layers = self.layers(model)
        choice = SequenceChoice(self._version, layers, self._native_step(model, caches[0]), caches[0].length)
        if isinstance(caches, DecodingCaches):
            caches.choice = choice
        return choice

    def _native_step(self, model: nn.Module, cache: KVCache) -> NativeDecoder | None:
        weight = model.token_embedding.weight
        key = cache.key
        if (key is None or key.dtype != torch.float32 or weight.dtype != torch.float32
                or weight.device.type != "cpu" or model.config.activation != "gelu_tanh"
                or any(layer.scale is not None for layer in self._layers) or not native.available()):
            return None
        if self._native is None:
            norm = model.final_norm
            try:
                self._native = NativeDecoder(
                    self._layers, (norm.weight.detach(), norm.bias.detach()), weight.detach(),
                    model.positions.embedding.weight.detach(), model.config.num_heads, model.config.norm_eps,
                )
            except ValueError:  # a weight that is not a contiguous fp32 CPU tensor
                return None
        return self._native
