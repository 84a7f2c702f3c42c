"""The ONNX graphs of the attention models, each the model's own forward or decoding step
with every cache an explicit tensor (the functional cache, :class:`PastKV`):

    GPT          prefill(ids, mask)                          -> logits, present K/V per layer
                 decode(ids, positions, mask, past K/V)      -> logits, present K/V (P + L keys)
    Transformer  encoder(src)                                -> memory, cross K/V per layer
                 decoder(ids, src_mask, past K/V, cross K/V) -> log-probs, present K/V
    BERT, ViT, GAT, HAN   model(...)                         -> every output the model gives

Each is a :class:`Graph`: a function of the model with named inputs (examples, dynamic
axes) and outputs; an exporter returns its graphs and what ``export.json`` says of them.
Masks, positions, grouped-query heads, GAT's dense attention are the model's. Notation:
B batch, L new tokens, P cached tokens, S source length, Hkv key/value heads, Dh head
width, N nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.attention.graph_dense import dense_adjacency
from attnlab.attention.kv_cache import PastKV
from attnlab.errors import AttnlabError
from attnlab.export.manifest import CONFIG
from attnlab.models.transformer import DecoderState

SEQ = {0: "batch", 1: "length"}
Axes = dict[int, str]  # dimension -> axis name, for every dynamic dimension of a tensor


@dataclass
class Graph:
    """Graph ``name``: ``fn(model, *inputs)``, each input ``name: (example, axes)``, each
    output ``name: axes``, in order (the names go into ``export.json``)."""

    name: str
    model: nn.Module
    fn: Callable[..., tuple[Tensor, ...]]
    inputs: dict[str, tuple[Tensor, Axes]]
    outputs: dict[str, Axes]
    torchscript: str | None = None  # why the graph takes TorchScript's exporter (dynamo's cannot)


class Traced(nn.Module):
    """``fn(model, *inputs)`` as a module's forward: what the exporter traces."""

    def __init__(self, model: nn.Module, fn: Callable[..., tuple[Tensor, ...]]):
        super().__init__()
        self.model, self.fn = model, fn  # not "graph": an exported module's .graph is its FX graph

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        return self.fn(self.model, *inputs)


def kv(prefix: str, layers: int, axes: dict, shape: tuple[int, ...] | None = None) -> dict:
    """``prefix.i.key``, ``prefix.i.value`` for each layer: ``axes`` (outputs), or given the
    ``shape (B, Hkv, P, Dh)`` of the examples, ``(random example, axes)`` pairs (inputs)."""
    names = [f"{prefix}.{i}.{x}" for i in range(layers) for x in ("key", "value")]
    return {name: axes if shape is None else (torch.randn(shape), axes) for name in names}


def flat(caches: Iterable[PastKV]) -> tuple[Tensor, ...]:
    """Per layer ``key, value (B, Hkv, P, Dh)``, in :func:`kv` order."""
    return tuple(t for c in caches for t in (c.key, c.value))


def pasts(tensors: tuple[Tensor, ...], static: bool = False) -> list[PastKV]:
    return [PastKV(tensors[i], tensors[i + 1], static) for i in range(0, len(tensors), 2)]


def config_for(model_type: str, config: object, **values: object) -> dict:
    """``export.json``'s ``config``: the fields its schema names (CONFIG), from ``values`` or ``config``."""
    return {name: values[name] if name in values else getattr(config, name) for name in CONFIG[model_type]}


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


def gpt_graphs(model: nn.Module) -> tuple[list[Graph], dict]:
    c, attn = model.config, model.blocks[0].self_attn
    h, dh = attn.num_kv_heads, attn.head_dim
    n, b, past, new = c.num_layers, 2, 4, 2  # decode's example feeds 2 tokens: its length stays dynamic
    ids = torch.randint(0, c.vocab_size, (b, 5))
    prefill = Graph("prefill", model, gpt_prefill, {"input_ids": (ids, SEQ), "attention_mask": (torch.ones_like(ids), SEQ)},
                    {"logits": SEQ, **kv("present", n, {0: "batch", 2: "length"})})
    decode = Graph("decode", model, gpt_decode, {
        "input_ids": (ids[:, :new].contiguous(), SEQ), "position_ids": (torch.full((b, new), past) + torch.arange(new), SEQ),
        "attention_mask": (torch.ones(b, past + new, dtype=torch.long), {0: "batch", 1: "past + length"}),
        **kv("past", n, {0: "batch", 2: "past"}, (b, h, past, dh))},
        {"logits": SEQ, **kv("present", n, {0: "batch", 2: "past + length"})})
    return [prefill, decode], {"config": config_for("gpt2", c, num_heads=h, head_dim=dh)}


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


def translator_graphs(model: nn.Module) -> tuple[list[Graph], dict]:
    c, attn = model.config, model.stack.decoder_layers[0].self_attn
    if c.copy_attention:
        raise AttnlabError("export: a translator with copy attention has no ONNX graphs yet (its decoder step "
                           "needs the source ids as an input); export a model trained without --copy-attention")
    n, h, dh, b, s, past = c.num_decoder_layers, attn.num_kv_heads, attn.head_dim, 2, 6, 3
    src = torch.randint(4, c.src_vocab_size, (b, s))
    src[1, -2:] = c.pad_id
    source, cross = {0: "batch", 1: "src_length"}, {0: "batch", 2: "src_length"}
    encoder = Graph("encoder", model, translator_encoder, {"src_ids": (src, source)},
                    {"memory": source, **kv("cross", n, cross)})
    decoder = Graph("decoder", model, translator_decoder, {
        "input_ids": (torch.randint(4, c.tgt_vocab_size, (b, 2)), SEQ), "src_mask": ((src != c.pad_id).long(), source),
        **kv("past", n, {0: "batch", 2: "past"}, (b, h, past, dh)),
        **kv("cross", n, cross, (b, h, s, dh))},
        {"log_probs": SEQ, **kv("present", n, {0: "batch", 2: "past + length"})})
    config = config_for("transformer", c, num_layers=n, num_heads=h, head_dim=dh)
    return [encoder, decoder], {"config": config}


# --- one-graph models: BERT, ViT, GAT, HAN ---------------------------------------------
_EDGES = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 2, 2], [1, 2, 3, 4, 5, 6, 0, 5, 5]])  # 7 nodes, a repeated edge


def one_graph(model: nn.Module) -> tuple[list[Graph], dict]:
    """BERT ``(input_ids, token_type_ids, attention_mask) (B, L)``, ViT ``pixel_values (B, C,
    Hi, Wi)`` at the configured image size, GAT ``(x (N, F), edge_index (2, E))`` or HAN
    ``(x, edge_index.p (2, E_p) per meta-path)`` -> every tensor the model's output holds
    (HAN's ``semantic_weights`` too). GAT and HAN attend densely over each edge list's
    adjacency matrix (the edge-list path's sparse sums have no ONNX form): memory ~ N^2."""
    c, kind = model.config, model.model_type
    if kind == "bert":
        ids = torch.randint(1, c.vocab_size, (2, 7))
        mask = torch.ones_like(ids)
        mask[1, -2:] = 0
        inputs, first = {"input_ids": (ids, SEQ), "token_type_ids": (torch.zeros_like(ids), SEQ), "attention_mask": (mask, SEQ)}, "batch"
    elif kind == "vit":
        inputs, first = {"pixel_values": (torch.randn(2, c.num_channels, c.image_size, c.image_size), {0: "batch"})}, "batch"
    else:  # GAT, HAN: unequal edge counts per meta-path
        paths = [f"edge_index.{p}" for p in range(getattr(c, "num_metapaths", 0))] or ["edge_index"]
        edges = {name: (_EDGES[:, : 9 - p % 7].contiguous(), {1: name.replace("edge_index", "edges")}) for p, name in enumerate(paths)}
        inputs, first = {"x": (torch.randn(7, c.in_dim), {0: "nodes"}), **edges}, "nodes"

    def call(m: nn.Module, *tensors: Tensor):
        if kind in ("gat", "han"):  # each edge list as its (N, N) edge counts
            adjacencies = [dense_adjacency(e, tensors[0].shape[0], tensors[0].dtype) for e in tensors[1:]]
            tensors = (tensors[0], adjacencies if kind == "han" else adjacencies[0])
        return m(*tensors)

    with torch.no_grad():
        example = {name: value for name, value in vars(call(model, *(t for t, _ in inputs.values()))).items()
                   if isinstance(value, Tensor)}  # the model's outputs, in its order (HF's for BERT, ViT)
    outputs = {name: ({0: first} | ({1: "length"} if kind == "bert" and t.dim() == 3 else {})) if t.dim() >= 2 else {}
               for name, t in example.items()}
    graph = Graph("model", model, lambda m, *tensors: tuple(getattr(call(m, *tensors), n) for n in outputs), inputs, outputs)
    labels = {"labels": list(c.labels)} if hasattr(c, "labels") else {}
    return [graph], {"config": config_for(kind, c, **labels)}
