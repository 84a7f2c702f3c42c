"""The ONNX graphs of the Transformer-shaped models: each traces the model's own forward or
decoding step, with every cache an explicit tensor (the functional cache, :class:`PastKV`).

    GPT          prefill(ids, mask)                          -> logits, present K/V per layer
                 decode(ids, positions, mask, past K/V)      -> logits, present K/V (P + L keys)
    Transformer  encoder(src)                                -> memory, cross K/V per layer
                 decoder(ids, src_mask, past K/V, cross K/V) -> log-probs, present K/V
    BERT, ViT    model(...)                                  -> every output the head has
    GAT, HAN     model(x, edge_index [.p per meta-path])     -> logits [, semantic_weights]

What is export's own stays here: the graphs' inputs and outputs (names, dynamic axes,
examples), the caches as tensors and what ``export.json`` says about running them. The
math -- masks, relative positions, grouped-query heads, rotary positions -- is the model's;
its checks that read values stay out of a trace (``torch.compiler.is_compiling()``). Exports
are inference graphs (eval mode: no dropout). Tests compare each graph with the model
(``tests/export``).

Notation: B batch, L new tokens, P cached tokens, S source length, Hkv key/value heads, Dh
head width.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from attnlab.attention.graph_dense import dense_adjacency
from attnlab.attention.kv_cache import PastKV
from attnlab.export.spec import Exported, Graph
from attnlab.models.transformer import DecoderState


class Traced(nn.Module):
    """``fn(model, *inputs)`` as a module's forward: what the exporter traces."""

    def __init__(self, model: nn.Module, fn: Callable[..., tuple[Tensor, ...]]):
        super().__init__()
        self.model, self.fn = model, fn  # not "graph": an exported module's .graph is its FX graph

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        return self.fn(self.model, *inputs)


def kv_names(prefix: str, layers: int) -> list[str]:
    return [f"{prefix}.{i}.{x}" for i in range(layers) for x in ("key", "value")]


def flat(caches: Iterable[PastKV]) -> tuple[Tensor, ...]:
    """Per layer ``key, value (B, Hkv, P, Dh)``, in :func:`kv_names` order."""
    return tuple(t for c in caches for t in (c.key, c.value))


def pasts(tensors: tuple[Tensor, ...], static: bool = False) -> list[PastKV]:
    return [PastKV(tensors[i], tensors[i + 1], static) for i in range(0, len(tensors), 2)]


# --- GPT ------------------------------------------------------------------------------
def gpt_prefill(m: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, ...]:
    """A left-padded prompt ``(B, L)`` (0 in ``attention_mask`` on pads; positions count real
    tokens) -> logits ``(B, L, V)``, K, V per layer ``(B, Hkv, L, Dh)``."""
    attn = m.blocks[0].self_attn
    empty = PastKV.empty(input_ids.shape[0], attn.num_kv_heads, attn.head_dim, m.lm_head_weight)
    positions = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)  # (B, L)
    return gpt_decode(m, input_ids, positions, attention_mask, *flat([empty] * len(m.blocks)))


def gpt_decode(m: nn.Module, input_ids: Tensor, position_ids: Tensor, attention_mask: Tensor, *past: Tensor):
    """``L`` new tokens after ``P`` cached ones (``attention_mask (B, P + L)``) -> logits and
    K, V ``(B, Hkv, P + L, Dh)``: :meth:`GPT.forward` with functional caches."""
    out = m(input_ids, attention_mask, position_ids=position_ids, caches=pasts(past))
    return (out.logits, *flat(out.caches))


def gpt_graphs(model: nn.Module) -> Exported:
    c, attn = model.config, model.blocks[0].self_attn
    n, b, length, past, new = c.num_layers, 2, 5, 4, 2  # decode's example feeds 2 tokens: its length stays dynamic
    ids = torch.randint(0, c.vocab_size, (b, length))
    seq = {0: "batch", 1: "length"}
    present, past_names = kv_names("present", n), kv_names("past", n)
    prefill = Graph("prefill", Traced(model, gpt_prefill), (ids, torch.ones(b, length, dtype=torch.long)),
                    ["input_ids", "attention_mask"], ["logits", *present],
                    {"input_ids": seq, "attention_mask": seq, "logits": seq, **dict.fromkeys(present, {0: "batch", 2: "length"})})
    kv = tuple(torch.randn(b, attn.num_kv_heads, past, attn.head_dim) for _ in past_names)
    example = (ids[:, :new].contiguous(), torch.full((b, new), past) + torch.arange(new),
               torch.ones(b, past + new, dtype=torch.long), *kv)
    decode = Graph("decode", Traced(model, gpt_decode), example,
                   ["input_ids", "position_ids", "attention_mask", *past_names], ["logits", *present],
                   {"input_ids": seq, "position_ids": seq, "attention_mask": {0: "batch", 1: "past + length"}, "logits": seq,
                    **dict.fromkeys(past_names, {0: "batch", 2: "past"}),
                    **dict.fromkeys(present, {0: "batch", 2: "past + length"})})
    info = {
        "config": {"vocab_size": c.vocab_size, "context_length": c.context_length, "num_layers": n,
                   "num_heads": attn.num_kv_heads, "head_dim": attn.head_dim, "eos_token_id": c.eos_token_id},
        "generation": {"graphs": ["prefill", "decode"], "steps": [
            "prefill(input_ids, attention_mask): the prompt, left-padded (0 in attention_mask on pads); "
            "next token = argmax of logits[:, -1]; the cache = present.*",
            "decode(input_ids (B, 1) = the new token, position_ids (B, 1) = last position + 1 (positions count real "
            "tokens only), attention_mask (B, P + 1) = the mask so far + a 1 column, past.i.key/value = the previous "
            "present.i.key/value (B, num_heads, P, head_dim): num_heads counts the key/value heads)",
            "repeat decode until eos_token_id or context_length tokens"]},
    }
    return Exported([prefill, decode], info)


# --- Transformer translator -----------------------------------------------------------
def translator_encoder(m: nn.Module, src_ids: Tensor) -> tuple[Tensor, ...]:
    """``src_ids (B, S)`` -> memory ``(B, S, D)`` and each decoder layer's cross-attention
    K, V ``(B, Hkv, S, Dh)`` (the static cache: projected once per sentence)."""
    memory, _, _ = m.encode(src_ids)
    return (memory, *flat(layer.cross_attn.keys_values(memory) for layer in m.stack.decoder_layers))


def translator_decoder(m: nn.Module, input_ids: Tensor, src_mask: Tensor, *caches: Tensor) -> tuple[Tensor, ...]:
    """``input_ids (N, L)`` at positions ``P ..``, ``src_mask (N, S)`` (1 on real source
    tokens), past self K, V ``(N, Hkv, P, Dh)`` then cross K, V per layer -> log-probabilities
    ``(N, L, V)`` and present self K, V: :meth:`Transformer.advance` with functional caches."""
    n = len(m.stack.decoder_layers)
    past, cross = pasts(caches[: 2 * n]), pasts(caches[2 * n :], static=True)
    state = DecoderState(None, src_mask.bool()[:, None, None, :], past, cross, length=past[0].length)
    log_probs, state = m.advance(input_ids, state)
    return (log_probs, *flat(state.self_caches))


def translator_graphs(model: nn.Module) -> Exported:
    c, attn = model.config, model.stack.decoder_layers[0].self_attn
    n, b, s, past = c.num_decoder_layers, 2, 6, 3
    src = torch.randint(4, c.src_vocab_size, (b, s))
    src[1, -2:] = c.pad_id
    cross, past_names, present = kv_names("cross", n), kv_names("past", n), kv_names("present", n)
    bs = {0: "batch", 1: "src_length"}
    encoder = Graph("encoder", Traced(model, translator_encoder), (src,), ["src_ids"], ["memory", *cross],
                    {"src_ids": bs, "memory": bs, **dict.fromkeys(cross, {0: "batch", 2: "src_length"})})
    kv = tuple(torch.randn(b, attn.num_kv_heads, past, attn.head_dim) for _ in past_names)
    ckv = tuple(torch.randn(b, attn.num_kv_heads, s, attn.head_dim) for _ in cross)
    decoder = Graph(
        "decoder", Traced(model, translator_decoder), (torch.randint(4, c.tgt_vocab_size, (b, 2)), (src != c.pad_id).long(), *kv, *ckv),
        ["input_ids", "src_mask", *past_names, *cross], ["log_probs", *present],
        {"input_ids": {0: "batch", 1: "length"}, "src_mask": bs, **dict.fromkeys(past_names, {0: "batch", 2: "past"}),
         **dict.fromkeys(cross, {0: "batch", 2: "src_length"}), "log_probs": {0: "batch", 1: "length"},
         **dict.fromkeys(present, {0: "batch", 2: "past + length"})},
    )
    info = {
        "config": {"src_vocab_size": c.src_vocab_size, "tgt_vocab_size": c.tgt_vocab_size, "num_layers": n,
                   "num_heads": attn.num_kv_heads, "head_dim": attn.head_dim, "pad_id": c.pad_id, "bos_id": c.bos_id,
                   "eos_id": c.eos_id, "max_len": c.max_len},
        "generation": {"graphs": ["encoder", "decoder"], "steps": [
            "encoder(src_ids (B, S), pad_id on padding) -> memory, cross.i.key/value (static for the sentence)",
            "decoder(input_ids (B, 1) = bos_id first, src_mask = (src_ids != pad_id), past.i.key/value "
            "(B, num_heads, 0, head_dim) at the first step, then the previous present.i.*, cross.i.* from the encoder)",
            "next token = argmax of log_probs[:, -1]; stop at eos_id or max_len tokens; "
            "beam search: reorder every past/cross/src_mask row with the chosen parents"]},
    }
    return Exported([encoder, decoder], info)


# --- encoders: BERT, ViT --------------------------------------------------------------
def outputs_of(model: nn.Module) -> list[str]:
    """The output fields a BERT's or ViT's forward fills (without labels), in order."""
    head = getattr(model.config, "head", None)
    names = ["last_hidden_state"] + (["pooler_output"] if model.pooler is not None else [])
    if head in ("pretraining", "mlm", "lm"):
        names.append("mlm_logits")
    if head in ("pretraining", "nsp"):
        names.append("nsp_logits")
    return names + (["logits"] if head == "classifier" or getattr(model, "classifier", None) is not None else [])


def encoder_graphs(model: nn.Module) -> Exported:
    """BERT ``(input_ids, token_type_ids, attention_mask) (B, L)`` or ViT ``pixel_values
    (B, C, Hi, Wi)`` at the configured image size -> every output of :func:`outputs_of`."""
    c, outputs = model.config, outputs_of(model)

    def run(m: nn.Module, *inputs: Tensor) -> tuple[Tensor, ...]:
        out = m(*inputs)
        return tuple(getattr(out, name) for name in outputs)

    if hasattr(c, "vocab_size"):  # BERT
        ids = torch.randint(1, c.vocab_size, (2, 7))
        mask = torch.ones_like(ids)
        mask[1, -2:] = 0
        seq = {0: "batch", 1: "length"}
        axes = {"input_ids": seq, "token_type_ids": seq, "attention_mask": seq,
                **{n: (seq if n in ("last_hidden_state", "mlm_logits") else {0: "batch"}) for n in outputs}}
        graph = Graph("model", Traced(model, run), (ids, torch.zeros_like(ids), mask),
                      ["input_ids", "token_type_ids", "attention_mask"], outputs, axes)
        return Exported([graph], {"config": {"head": c.head, "labels": list(c.labels), "vocab_size": c.vocab_size,
                                             "max_positions": c.max_positions, "pad_token_id": c.pad_token_id}})
    pixels = torch.randn(2, c.num_channels, c.image_size, c.image_size)
    axes = {"pixel_values": {0: "batch"}, **{name: {0: "batch"} for name in outputs}}
    graph = Graph("model", Traced(model, run), (pixels,), ["pixel_values"], outputs, axes)
    return Exported([graph], {"config": {"image_size": c.image_size, "num_channels": c.num_channels, "labels": list(c.labels)},
                              "note": "the image size is fixed at the configured one; the batch is dynamic"})


# --- graph attention: GAT, HAN --------------------------------------------------------
_DENSE_NOTE = ("attention is dense over the nodes (an (H, N, N) score matrix, attnlab.attention.graph_dense): "
               "any graph size runs, memory grows as N^2 (a few thousand nodes)")
_EDGES = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 2, 2], [1, 2, 3, 4, 5, 6, 0, 5, 5]])  # 7 nodes, a repeated edge


def node_graphs(model: nn.Module) -> Exported:
    """GAT ``(x (N, F), edge_index (2, E))`` or HAN ``(x, edge_index.p (2, E_p) per meta-path)``
    -> ``logits (N, K)`` (HAN: and ``semantic_weights (P,)``): the model's forward with each
    edge list as its adjacency matrix (a sorted, sparse sum has no ONNX form)."""
    c = model.config
    paths = getattr(c, "num_metapaths", 0)
    names = [f"edge_index.{p}" for p in range(paths)] or ["edge_index"]
    outputs = ["logits", "semantic_weights"][: 1 + bool(paths)]

    def run(m: nn.Module, x: Tensor, *edges: Tensor) -> tuple[Tensor, ...]:
        adjacencies = [dense_adjacency(e, x.shape[0], x.dtype) for e in edges]
        out = m(x, adjacencies if paths else adjacencies[0])
        return tuple(getattr(out, name) for name in outputs)

    edges = tuple(_EDGES[:, : 9 - p % 7].contiguous() for p in range(len(names)))  # unequal edge counts
    axes = {"x": {0: "nodes"}, "logits": {0: "nodes"},
            **{name: {1: f"edges.{p}" if paths else "edges"} for p, name in enumerate(names)}}
    graph = Graph("model", Traced(model, run), (torch.randn(7, c.in_dim), *edges), ["x", *names], outputs, axes)
    config = {"in_dim": c.in_dim, "num_classes": c.num_classes, **({"num_metapaths": paths} if paths else {})}
    return Exported([graph], {"config": config, "note": _DENSE_NOTE})
