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
  ``ATTNLAB_NATIVE=0`` turns it off). :func:`greedy` runs a whole greedy continuation
  there in one call (``GPT.generate``), and :meth:`DecodingCaches.reorder` reorders the
  beams of a beam search by a table of row indices instead of copying the caches.

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
    :class:`DecodingCache` made at its first step; :meth:`reset` starts a new sequence.

    :meth:`reorder` (beam search) of a sequence the C step decodes, keeping its number of
    rows, rewrites ``lineage (B, width)`` int32 instead of copying every cache: row ``b``'s
    key/value at position ``t`` stays in storage row ``lineage[b, t]`` (B x P ints per
    reorder instead of 2 x layers x B x H x P x Dh floats). Whatever reads a layer's cache
    (``caches[i]``, iteration) first moves the rows into place (:meth:`settle`), so every
    reader sees the caches reordered; the C step reads the storage through the table
    (:meth:`stored`).
    """

    def __init__(self, caches=()):
        super().__init__(caches)
        self.choice: SequenceChoice | None = None
        self.lineage: Tensor | None = None

    def __getitem__(self, index):
        self.settle()
        return super().__getitem__(index)

    def __iter__(self):
        self.settle()
        return super().__iter__()

    def stored(self) -> list[KVCache]:
        """The per-layer caches as stored: rows not yet moved by a pending :meth:`reorder`."""
        return list(super().__iter__())

    def reset(self) -> None:
        for cache in self.stored():
            cache.reset()
        self.choice = self.lineage = None

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index (B_new,)`` of every cache (``KVCache.reorder``): by the lineage
        table when the C step decodes this sequence and ``B_new = B``, else by copying."""
        first = super().__getitem__(0)
        rows = None if first.key is None else first.key.shape[0]
        if self.choice is not None and self.choice.native is not None and index.numel() == rows \
                and index.device.type == "cpu":
            if self.lineage is None:
                self.lineage = torch.arange(rows, dtype=torch.int32)[:, None].expand(rows, first.length).contiguous()
            self.lineage = self.lineage[index]  # (B, width): a bad index fails here, never in C
            return
        for cache in self:  # settles a pending reorder first
            cache.reorder(index)

    def settle(self) -> None:
        """Move each row's keys/values to its own storage row (after a :meth:`reorder` by lineage)."""
        if self.lineage is None:
            return
        lineage, self.lineage = self.lineage, None
        caches = self.stored()
        b, heads, n, _ = caches[0].key.shape
        index = (lineage[:, None, :n].long(), torch.arange(heads)[None, :, None], torch.arange(n)[None, None, :])
        for cache in caches:
            for stored in (cache.key, cache.value):  # (B, H, n, Dh) views of the storage
                with torch.inference_mode() if stored.is_inference() else torch.no_grad():
                    stored.copy_(stored[index])


def native_step(native: NativeDecoder, tokens: Tensor, caches: list[KVCache]) -> tuple[Tensor, Tensor]:
    """The C step for ``tokens (B,)`` after ``caches``: logits ``(B, V)`` and LN_f(h) ``(B, D)``,
    reading the storage through the lineage of a pending reorder."""
    stored = caches.stored() if isinstance(caches, DecodingCaches) else list(caches)
    past = stored[0].length
    keys, values = zip(*(cache.claim(1) for cache in stored))  # (B, H, capacity, Dh) each
    lineage = getattr(caches, "lineage", None)
    if lineage is not None and lineage.shape[1] != keys[0].shape[2]:  # the caches grew: positions >= width
        caches.lineage = lineage = F.pad(lineage, (0, keys[0].shape[2] - lineage.shape[1]))  # are set by the step
    return native.run(tokens, keys, values, past, lineage)


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
        first = caches.stored()[0] if isinstance(caches, DecodingCaches) else caches[0]  # a pending reorder stays
        choice = getattr(caches, "choice", None)
        if choice is not None and choice.version is self._version and first.length > choice.length:
            return choice
        layers = self.layers(model)
        key = first.key
        step = self._native_for(model) if key is not None and key.dtype == torch.float32 else None
        choice = SequenceChoice(self._version, layers, step, first.length)
        if isinstance(caches, DecodingCaches):
            caches.choice = choice
        return choice

    def native(self, model: nn.Module) -> NativeDecoder | None:
        """The C step for the model's current weights, or ``None`` where it does not apply
        (weights not fp32 on the CPU, another activation or score scale, no C compiler)."""
        self.layers(model)
        return self._native_for(model)

    def _native_for(self, model: nn.Module) -> NativeDecoder | None:
        weight = model.token_embedding.weight
        if (weight.dtype != torch.float32 or weight.device.type != "cpu" or model.config.activation != "gelu_tanh"
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


@torch.inference_mode()
def greedy(
    model: nn.Module, input_ids: Tensor, max_new_tokens: int, *, do_sample: bool = False, temperature: float = 1.0,
    top_k: int | None = None, top_p: float | None = None, eos_token_id: int | None = None,
    pad_token_id: int | None = None, attention_mask: Tensor | None = None, generator: torch.Generator | None = None,
    on_tokens: Callable[[Tensor], None] | None = None,
) -> Tensor | None:
    """:func:`attnlab.evaluation.sampling.generate`'s greedy continuation (same arguments, same
    tokens) with the loop in C: the prompt through ``model(...)``, then one call that steps,
    takes each row's argmax and handles the end token and padding. ``None`` where it does not
    apply -- sampling, padding, streaming, no C step for the model, a request the plain loop
    refuses -- and the caller runs the plain loop. (``temperature``, ``top_k``, ``top_p`` and
    ``generator`` only matter when sampling, there as here.)"""
    pad = eos_token_id if pad_token_id is None else pad_token_id
    vocab, limit = model.config.vocab_size, model.config.context_length
    if do_sample or on_tokens is not None or input_ids.dim() != 2 or input_ids.device.type != "cpu" \
            or not 2 <= max_new_tokens <= limit - input_ids.shape[1] or input_ids.shape[1] < 1 \
            or (eos_token_id is not None and not 0 <= pad < vocab) or torch.is_autocast_enabled("cpu") \
            or (attention_mask is not None and (attention_mask.shape != input_ids.shape or not bool(attention_mask.all()))):
        return None
    step = model._decoding.native(model)
    if step is None:
        return None
    b, length = input_ids.shape
    caches = model.make_caches(capacity=length + max_new_tokens)
    first = model(input_ids, caches=caches, last_only=True).logits[:, -1].argmax(dim=-1)  # (B,)
    out = input_ids.new_empty(b, length + max_new_tokens)  # (B, L + N)
    out[:, :length], out[:, length] = input_ids, first
    finished = None if eos_token_id is None else first == eos_token_id
    if finished is not None and bool(finished.all()):
        return out[:, : length + 1]
    keys, values = zip(*(cache.claim(max_new_tokens - 1) for cache in caches))  # (B, H, L + N, Dh) each
    new = step.generate(first, keys, values, length, max_new_tokens - 1, eos_token_id, pad, finished)  # (B, made)
    out[:, length + 1 : length + 1 + new.shape[1]] = new
    return out[:, : length + 1 + new.shape[1]]
