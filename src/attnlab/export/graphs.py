"""The graphs ONNX export traces: modules that run a model's own weights with every cache
an explicit tensor.

attnlab's models keep decoding state in Python objects (:class:`KVCache`, dataclass
states) and check inputs by reading tensor values; an exported graph can hold neither.
Each wrapper here takes the model, reads its submodules' parameters (never copies or
changes them) and computes the same function as the model's forward / step in plain
tensor operations, with the state passed in and returned:

    GPT          prefill(ids, mask)                       -> logits, present K/V per layer
                 decode(ids, positions, mask, past K/V)   -> logits, present K/V (P + L keys)
    Transformer  encoder(src)                             -> memory, cross K/V per layer
                 decoder(ids, src_mask, past K/V, cross K/V) -> log-probs, present K/V
    BERT, ViT    one graph, every output the head has
    GAT, HAN     :mod:`attnlab.export.gnn` (attention dense over (N, N))

Masks follow attnlab's convention (True = may attend) and are applied with ``where``
(a large negative score, not ``-inf``: a row with no allowed key then averages instead
of giving NaN; no row of these graphs is ever empty except an all-padding source).
Dropout is absent: exports are inference graphs. Tests compare every graph with the
model's own forward (``tests/export``).

Notation: B batch, L new tokens, P cached tokens, S source length, D width, H heads,
Dh head width, V vocabulary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError


def activation(name: str):
    """The activation called ``name``, as plain tensor operations (attnlab's ``gelu_tanh``
    may run a C kernel on the CPU; in a graph it is GELU with the tanh approximation)."""
    if name == "gelu_tanh":
        return lambda x: F.gelu(x, approximate="tanh")
    from attnlab.layers.feed_forward import get_activation

    return get_activation(name)


def output_layer(model: nn.Module) -> nn.Module:
    """The translators' output projection (``output_proj``; ``generator`` before the rename)."""
    layer = getattr(model, "output_proj", None)
    return layer if layer is not None else model.generator


# --- the pieces every Transformer-shaped graph shares ---------------------------------
def _linear(x: Tensor, layer: nn.Module) -> Tensor:
    """``layer``'s map as ``F.linear`` (attnlab's oneDNN path is a CPU kernel, not an op)."""
    return F.linear(x, layer.weight, layer.bias)


def _split_heads(x: Tensor, heads: int) -> Tensor:
    b, length, d = x.shape
    return x.view(b, length, heads, d // heads).transpose(1, 2)  # (B, H, L, Dh)


def _merge_heads(x: Tensor) -> Tensor:
    b, h, length, dh = x.shape
    return x.transpose(1, 2).reshape(b, length, h * dh)  # (B, L, D)


def attend(
    q: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None, scale: float | None = None, bias: Tensor | None = None
) -> Tensor:
    """softmax(q k^T * scale + bias, masked) v (scale = 1/sqrt(Dh) by default): ``q (B, H, Lq, Dh)``,
    ``k, v (B, H, Lk, Dh)``, ``allowed`` bool and ``bias`` float broadcastable to ``(B, H, Lq, Lk)``
    -> ``(B, H, Lq, Dh)``."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q * scale) @ k.transpose(-2, -1)  # (B, H, Lq, Lk)
    if bias is not None:
        scores = scores + bias
    if allowed is not None:
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return scores.softmax(dim=-1) @ v


def relative_bias(attn: nn.Module, q: Tensor, k: Tensor) -> Tensor | None:
    """The layer's own score bias (BERT's relative positions), None without one."""
    bias = getattr(attn, "score_bias", None)
    return None if bias is None else bias(q, k)


def project_kv(attn: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-head keys and values of ``x (B, L, D)`` through ``attn``'s projections."""
    _check_attention(attn)
    heads = attn.num_heads
    return _split_heads(_linear(x, attn.k_proj), heads), _split_heads(_linear(x, attn.v_proj), heads)


def _check_attention(attn: nn.Module) -> None:
    for name in ("q_proj", "k_proj", "v_proj", "out_proj", "num_heads"):
        if not hasattr(attn, name):
            raise AttnlabError(
                f"ONNX export reads multi-head attention projections (q/k/v/out_proj); "
                f"{type(attn).__name__} has no {name}"
            )
    if getattr(attn, "num_kv_heads", attn.num_heads) != attn.num_heads or getattr(attn, "rotary", None) is not None:
        raise AttnlabError("ONNX export: grouped-query heads and rotary positions are not exported yet")


def attention(
    attn: nn.Module, x: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None
) -> Tensor:
    """``attn``'s output for queries ``x (B, Lq, D)`` on per-head ``k, v (B, H, Lk, Dh)``."""
    q = _split_heads(_linear(x, attn.q_proj), attn.num_heads)  # (B, H, Lq, Dh)
    scale = getattr(attn, "scale", None)
    return _linear(_merge_heads(attend(q, k, v, allowed, scale, relative_bias(attn, q, k))), attn.out_proj)  # (B, Lq, D)


def residual(res: nn.Module, x: Tensor, sublayer) -> Tensor:
    """attnlab's ``Residual``: pre-LN ``x + f(LN(x))`` or post-LN ``LN(x + f(x))``."""
    if res.norm_first:
        return x + sublayer(res.norm(x))
    return res.norm(x + sublayer(x))


def feed_forward(ffn: nn.Module, x: Tensor) -> Tensor:
    return _linear(activation(ffn.activation_name)(_linear(x, ffn.linear1)), ffn.linear2)


def encoder_block(block: nn.Module, x: Tensor, allowed: Tensor | None) -> Tensor:
    """A ``TransformerBlock`` without cache: ``x (B, L, D) -> (B, L, D)``."""
    def self_attend(h: Tensor) -> Tensor:
        k, v = project_kv(block.self_attn, h)
        return attention(block.self_attn, h, k, v, allowed)

    x = residual(block.attn_residual, x, self_attend)
    return residual(block.ffn_residual, x, lambda h: feed_forward(block.ffn, h))


def cached_self_block(
    block: nn.Module, x: Tensor, past_k: Tensor, past_v: Tensor, allowed: Tensor | None, *, residuals: tuple
) -> tuple[Tensor, Tensor, Tensor]:
    """The self-attention sub-layer of a block with its cache as tensors:
    ``x (B, L, D)``, ``past (B, H, P, Dh)`` -> hidden, ``present (B, H, P + L, Dh)``."""
    present = []

    def self_attend(h: Tensor) -> Tensor:
        k, v = project_kv(block.self_attn, h)
        k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)  # (B, H, P + L, Dh)
        present.extend((k, v))
        return attention(block.self_attn, h, k, v, allowed)

    x = residual(residuals[0], x, self_attend)
    return x, present[0], present[1]


def causal_allowed(length: int, past: int, keys: Tensor | None, device: torch.device) -> Tensor:
    """``(B or 1, 1, L, P + L)``: query i (position P + i) sees keys up to P + i, and only
    real keys (``keys (B, P + L)`` 1/True on real tokens) but always itself."""
    query_pos = torch.arange(length, device=device) + past  # (L,)
    key_pos = torch.arange(past + length, device=device)  # (P + L,)
    allowed = key_pos[None, :] <= query_pos[:, None]  # (L, P + L)
    if keys is None:
        return allowed[None, None]
    itself = key_pos[None, :] == query_pos[:, None]
    return (keys.bool()[:, None, None, :] & allowed) | itself  # (B, 1, L, P + L)


# --- GPT ------------------------------------------------------------------------------
def tied_lookup(table: Tensor, ids: Tensor) -> Tensor:
    """Embedding rows read from the transposed table ``(D, V)``: ``ids (B, L) -> (B, L, D)``.

    GPT ties its output map to the token embedding. Written as ``embedding(ids, W)`` and
    ``h @ W^T``, the graph would need ``W`` in two layouts, and ONNX Runtime would build
    the transposed one in every session (a second copy of the largest tensor). Reading
    columns of ``W^T`` instead leaves one constant, folded once at export time and shared
    by every graph and session."""
    b, length = ids.shape
    columns = table.index_select(1, ids.reshape(-1))  # (D, B*L)
    return columns.reshape(-1, b, length).permute(1, 2, 0)  # (B, L, D)


class GPTGraph(nn.Module):
    """GPT with its KV cache as tensors. ``prefill`` runs a (left-padded) prompt; ``decode``
    appends ``L`` new tokens (one while generating) to a cache of ``P`` tokens."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def _run(self, input_ids: Tensor, position_ids: Tensor, keys: Tensor, past: list[Tensor]):
        m = self.model
        b, length = input_ids.shape
        p = past[0].shape[2] if past else 0
        table = m.lm_head_weight.t()  # (D, V): the tied table in the one layout both uses read (see tied_lookup)
        h = tied_lookup(table, input_ids) + F.embedding(position_ids, m.positions.embedding.weight)
        allowed = causal_allowed(length, p, keys, input_ids.device)
        present = []
        for i, block in enumerate(m.blocks):
            empty = h.new_zeros(b, block.self_attn.num_heads, 0, block.self_attn.head_dim)
            pk, pv = (past[2 * i], past[2 * i + 1]) if past else (empty, empty)
            h, k, v = cached_self_block(block, h, pk, pv, allowed, residuals=(block.attn_residual,))
            h = residual(block.ffn_residual, h, lambda x, f=block.ffn: feed_forward(f, x))
            present.extend((k, v))
        logits = m.final_norm(h) @ table  # (B, L, V)
        return (logits, *present)

    def prefill(self, input_ids: Tensor, attention_mask: Tensor):
        """``input_ids, attention_mask (B, L)`` (left padding: 0 on pads) -> logits
        ``(B, L, V)`` and K, V per layer ``(B, H, L, Dh)``; positions count real tokens."""
        positions = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)  # (B, L)
        return self._run(input_ids, positions, attention_mask, [])

    def decode(self, input_ids: Tensor, position_ids: Tensor, attention_mask: Tensor, *past: Tensor):
        """``input_ids, position_ids (B, L)``, ``attention_mask (B, P + L)``, past K, V per
        layer ``(B, H, P, Dh)`` -> logits ``(B, L, V)`` and K, V ``(B, H, P + L, Dh)``."""
        return self._run(input_ids, position_ids, attention_mask, list(past))


class _Method(nn.Module):
    """One method of a graph wrapper as a module's forward (what the exporter traces)."""

    def __init__(self, graph: nn.Module, method: str):
        super().__init__()
        self.wrapped, self.method = graph, method  # not "graph": an exported module's .graph is its FX graph

    def forward(self, *args):
        return getattr(self.wrapped, self.method)(*args)


def method(graph: nn.Module, name: str) -> nn.Module:
    return _Method(graph, name).eval()


# --- Transformer translator -----------------------------------------------------------
class TransformerGraph(nn.Module):
    """The translator as an encoder graph and a one-token decoder step.

    The encoder also projects the cross-attention keys/values of every decoder layer
    (the static cache: computed once per sentence). The step takes the self-attention
    cache of ``P`` tokens (``P = 0`` at the first step) and returns it with one more.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def _embed(self, ids: Tensor, embedding: nn.Embedding, offset) -> Tensor:
        m = self.model
        x = F.embedding(ids, embedding.weight) * math.sqrt(m.config.d_model)
        return x + m.positions[offset : offset + ids.shape[1]].to(x.dtype)  # (B, L, D)

    def encoder(self, src_ids: Tensor):
        """``src_ids (B, S)`` -> memory ``(B, S, D)``, cross K, V per decoder layer ``(B, H, S, Dh)``."""
        m = self.model
        stack = m.stack
        real = src_ids != m.config.pad_id  # (B, S)
        allowed = real[:, None, None, :]  # (B, 1, 1, S)
        x = self._embed(src_ids, m.src_embed, 0)
        for block in stack.encoder_layers:
            x = encoder_block(block, x, allowed)
        memory = stack.encoder_norm(x)
        cross = []
        for layer in stack.decoder_layers:
            cross.extend(project_kv(layer.cross_attn, memory))
        return (memory, *cross)

    def decoder(self, input_ids: Tensor, src_mask: Tensor, *caches: Tensor):
        """``input_ids (N, L)`` at positions ``P ..``, ``src_mask (N, S)`` (1 on real source
        tokens), then per layer past self K, V ``(N, H, P, Dh)`` and cross K, V
        ``(N, H, S, Dh)`` -> log-probabilities ``(N, L, V)`` and present self K, V."""
        m = self.model
        stack = m.stack
        n_layers = len(stack.decoder_layers)
        past, cross = caches[: 2 * n_layers], caches[2 * n_layers :]
        p = past[0].shape[2]
        length = input_ids.shape[1]
        y = self._embed(input_ids, m.tgt_embed, p)
        self_allowed = causal_allowed(length, p, None, input_ids.device)
        cross_allowed = src_mask.bool()[:, None, None, :]  # (N, 1, 1, S)
        present = []
        for i, layer in enumerate(stack.decoder_layers):
            y, k, v = cached_self_block(layer, y, past[2 * i], past[2 * i + 1], self_allowed,
                                        residuals=(layer.self_residual,))
            ck, cv = cross[2 * i], cross[2 * i + 1]
            y = residual(layer.cross_residual, y,
                         lambda h, a=layer.cross_attn, ck=ck, cv=cv: attention(a, h, ck, cv, cross_allowed))
            y = residual(layer.ffn_residual, y, lambda h, f=layer.ffn: feed_forward(f, h))
            present.extend((k, v))
        hidden = stack.decoder_norm(y)
        log_probs = F.log_softmax(F.linear(hidden, m.output_proj.weight, m.output_proj.bias), dim=-1)
        return (log_probs, *present)


# --- encoders: BERT, ViT --------------------------------------------------------------
class BERTGraph(nn.Module):
    """BERT with its head: ``(input_ids, token_type_ids, attention_mask) (B, L)`` ->
    ``last_hidden_state`` and, as the head has them, ``pooler_output``, ``mlm_logits``,
    ``nsp_logits``, ``logits`` (:func:`bert_outputs` names them in order)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, token_type_ids: Tensor, attention_mask: Tensor):
        m = self.model
        e = m.embeddings
        x = F.embedding(input_ids, e.word.weight) + F.embedding(token_type_ids, e.token_type.weight)
        if e.absolute:  # relative positions enter the scores instead (relative_bias)
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            x = x + F.embedding(positions, e.position.weight)[None]
        x = e.norm(x)
        allowed = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
        for block in m.layers:
            x = encoder_block(block, x, allowed)
        outputs = [x]
        pooled = torch.tanh(_linear(x[:, 0], m.pooler)) if m.pooler is not None else None
        if pooled is not None:
            outputs.append(pooled)
        head = m.config.head
        if head in ("pretraining", "mlm"):
            h = m.mlm_norm(activation(m.config.activation)(_linear(x, m.mlm_dense)))
            outputs.append(F.linear(h, e.word.weight, m.mlm_bias))
        if head == "pretraining":
            outputs.append(_linear(pooled, m.nsp))
        if head == "classifier":
            outputs.append(_linear(pooled, m.classifier))
        return tuple(outputs)


def bert_outputs(config) -> list[str]:
    names = ["last_hidden_state"] + (["pooler_output"] if config.add_pooler else [])
    if config.head in ("pretraining", "mlm"):
        names.append("mlm_logits")
    if config.head == "pretraining":
        names.append("nsp_logits")
    if config.head == "classifier":
        names.append("logits")
    return names


class ViTGraph(nn.Module):
    """ViT: ``pixel_values (B, C, Hi, Wi)`` at the configured image size ->
    ``last_hidden_state`` (+ ``pooler_output``, ``logits`` as configured)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: Tensor):
        m = self.model
        e = m.embeddings
        x = e.patch(pixel_values)  # (B, D, h, w)
        x = x.flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([e.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + e.positions  # (B, 1 + N, D)
        for block in m.layers:
            x = encoder_block(block, x, None)
        x = m.norm(x)
        outputs = [x]
        if m.pooler is not None:
            outputs.append(torch.tanh(_linear(x[:, 0], m.pooler)))
        if m.classifier is not None:
            outputs.append(_linear(x[:, 0], m.classifier))
        return tuple(outputs)


def vit_outputs(model: nn.Module) -> list[str]:
    return ["last_hidden_state"] + (["pooler_output"] if model.pooler is not None else []) + (
        ["logits"] if model.classifier is not None else []
    )
