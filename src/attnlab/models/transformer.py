"""The Transformer encoder-decoder of Vaswani et al. (2017), "Attention Is All You Need".

    x_0 = Dropout(Embed(src) * sqrt(D) + PE)             PE: the sinusoidal positions
    x_l = TransformerBlock_l(x_{l-1})                     self-attention + FFN, Add & Norm
    y_0 = Dropout(Embed(tgt) * sqrt(D) + PE)
    y_l = DecoderBlock_l(y_{l-1}, x_N)                    causal self-attn + cross-attn + FFN
    P(tgt_{t+1} | tgt_{<=t}, src) = softmax(y_N W_E^T)    W_E tied with the target embedding

Guided alignment (Garg et al. 2019): with ``alignment_weight`` = lambda > 0 and gold targets
``align`` passed to :meth:`Transformer.forward`, one cross-attention head (by default head 0
of the penultimate decoder layer) is trained towards the gold alignment:
loss = CE + lambda * CE(gold alignment, that head's weights) (:mod:`attnlab.attention.guided_alignment`).

Post-LN Add & Norm as in the paper by default (``norm_first=True`` for pre-LN, which then
ends each stack with a final LayerNorm). Source positions equal to ``pad_id`` are masked
out of encoder self-attention and of cross-attention; target padding needs no mask since
it only ever comes after the real tokens and decoder self-attention is causal.

Incremental decoding (see ``attnlab.evaluation.decoding``): :meth:`Transformer.start`
encodes the source once; :meth:`Transformer.step` feeds one target token per sentence,
with a growing KV cache for decoder self-attention and a static one for the
cross-attention keys/values, computed on the first step.

Notation: B batch, S source length, T target length, D d_model, H heads, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.guided_alignment import guided_alignment_loss
from attnlab.attention.kv_cache import KVCache, PastKV, make_caches
from attnlab.attention.maps import Attentions
from attnlab.attention.masks import mask_from_padding
from attnlab.attention.multi_head import MultiHeadAttention
from attnlab.attention.positional import sinusoidal_positions
from attnlab.errors import AttnlabError
from attnlab.kernels.linear import Linear
from attnlab.layers.blocks import DecoderBlock, TransformerBlock, run_encoder
from attnlab.models.base import PretrainedModel, check_ids, check_labels
from attnlab.models.copy_attention import CopyGate, copy_log_probs, smoothed_nll


@dataclass
class TransformerConfig:
    """Sizes and options of a :class:`Transformer`; presets in ``TRANSFORMER_PRESETS``.

    ``share_embeddings`` ties the source and target embeddings and the pre-softmax weights
    (one shared vocabulary, as in the paper); ``tie_output`` ties only the target embedding
    and the pre-softmax weights. ``final_norm`` (default: ``norm_first``) ends both stacks
    with a LayerNorm, as ``torch.nn.Transformer`` always does. ``alignment_weight`` (lambda
    of guided alignment) supervises head ``alignment_head`` of decoder layer
    ``alignment_layer`` (Python indexing; None: the penultimate layer as in Garg et al.
    2019, the only one of a one-layer decoder). ``copy_attention`` mixes a copy of the
    source tokens the last decoder layer attends to into the output distribution
    (pointer-generator, :mod:`attnlab.models.copy_attention`; needs one vocabulary for both
    sides: ``src_vocab_size == tgt_vocab_size``, the ids meaning the same tokens).
    """

    src_vocab_size: int = 1000
    tgt_vocab_size: int = 1000
    d_model: int = 512
    num_heads: int = 8
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    pad_id: int = 0
    bos_id: int = 2
    eos_id: int = 3
    attention_dropout: float = 0.0
    activation: str = "relu"
    norm_first: bool = False
    final_norm: bool | None = None
    norm_eps: float = 1e-5
    share_embeddings: bool = False
    tie_output: bool = True
    max_len: int = 256
    label_smoothing: float = 0.1
    alignment_weight: float = 0.0
    alignment_layer: int | None = None
    alignment_head: int = 0
    copy_attention: bool = False

    def __post_init__(self) -> None:
        if self.d_model % self.num_heads:
            raise AttnlabError(f"TransformerConfig: d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise AttnlabError(
                f"TransformerConfig: share_embeddings needs src_vocab_size == tgt_vocab_size, "
                f"got {self.src_vocab_size} and {self.tgt_vocab_size}"
            )
        if self.copy_attention and self.src_vocab_size != self.tgt_vocab_size:
            raise AttnlabError(
                f"TransformerConfig: copy_attention needs one vocabulary for both sides (src_vocab_size == "
                f"tgt_vocab_size), got {self.src_vocab_size} and {self.tgt_vocab_size}"
            )
        for name in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, name) < min(self.src_vocab_size, self.tgt_vocab_size):
                raise AttnlabError(f"TransformerConfig.{name} = {getattr(self, name)}: expected an id below the vocabulary sizes")
        if not 0.0 <= self.label_smoothing <= 1.0:  # what torch's cross_entropy accepts (False for NaN)
            raise AttnlabError(f"TransformerConfig.label_smoothing = {self.label_smoothing}: expected a value in [0, 1]")
        layers = self.num_decoder_layers
        if not self.alignment_weight >= 0:  # NaN too
            raise AttnlabError(f"TransformerConfig.alignment_weight = {self.alignment_weight}: expected >= 0")
        if self.alignment_layer is not None and not -layers <= self.alignment_layer < layers:
            raise AttnlabError(
                f"TransformerConfig.alignment_layer = {self.alignment_layer}: expected a decoder layer in [{-layers}, {layers})"
            )
        if not 0 <= self.alignment_head < self.num_heads:
            raise AttnlabError(
                f"TransformerConfig.alignment_head = {self.alignment_head}: expected a head in [0, {self.num_heads})"
            )

    @property
    def supervised_layer(self) -> int:
        """The decoder layer (0-based) whose cross-attention guided alignment supervises."""
        if self.alignment_layer is None:
            return max(self.num_decoder_layers - 2, 0)
        return self.alignment_layer % self.num_decoder_layers


TRANSFORMER_PRESETS: dict[str, TransformerConfig] = {
    # the paper's base model (Table 3)
    "base": TransformerConfig(),
    # the paper's big model
    "big": TransformerConfig(d_model=1024, num_heads=16, d_ff=4096, dropout=0.3),
    # trains on the synthetic corpus to BLEU > 90 in minutes on a laptop CPU
    "small": TransformerConfig(
        d_model=128, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, d_ff=512, dropout=0.1,
        max_len=128,
    ),
    # unit tests and smoke runs
    "tiny": TransformerConfig(
        d_model=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=64, dropout=0.0, max_len=64,
    ),
}


@dataclass
class TransformerOutput:
    """``logits (B, T, V)``; ``loss`` when labels were given; ``alignment_loss``: the guided
    alignment term (unweighted) when it was computed.

    ``attentions`` (with ``need_weights=True``): every head of every layer, in order,
    ``encoder.{l}.self (B, H, S, S)``, ``decoder.{l}.self (B, H, T, T)`` (kind "causal"),
    ``decoder.{l}.cross (B, H, T, S)`` (:class:`attnlab.attention.maps.Attentions`).
    """

    logits: Tensor
    loss: Tensor | None = None
    attentions: Attentions | None = None
    alignment_loss: Tensor | None = None


@dataclass
class DecoderState:
    """What incremental decoding carries from step to step (one row per hypothesis)."""

    memory: Tensor | None  # (N, S, D) encoder output (None: the cross caches hold its keys)
    memory_mask: Tensor  # (N, 1, 1, S) True on real source tokens
    self_caches: list[KVCache | PastKV] = field(default_factory=list)  # KVCache: kept in place;
    cross_caches: list[KVCache | PastKV] = field(default_factory=list)  # PastKV: replaced each step
    length: int = 0  # target tokens fed so far
    src_ids: Tensor | None = None  # (N, S) the source, for copy attention


class EncoderDecoder(nn.Module):
    """The two stacks of blocks, without embeddings: what ``torch.nn.Transformer`` is."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        c = config
        block = dict(
            dropout=c.dropout, attention_dropout=c.attention_dropout, activation=c.activation,
            norm_first=c.norm_first, norm_eps=c.norm_eps,
        )
        self.encoder_layers = nn.ModuleList(
            TransformerBlock(c.d_model, c.num_heads, c.d_ff, **block) for _ in range(c.num_encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderBlock(c.d_model, c.num_heads, c.d_ff, **block) for _ in range(c.num_decoder_layers)
        )
        final_norm = c.norm_first if c.final_norm is None else c.final_norm
        self.encoder_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps) if final_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps) if final_norm else nn.Identity()

    def encode(self, x: Tensor, mask: Tensor | None, need_weights: bool = False) -> tuple[Tensor, list[Tensor]]:
        """``x (B, S, D)``, ``mask (B, 1, 1, S)`` -> memory ``(B, S, D)``, per-layer weights."""
        x, weights = run_encoder(self.encoder_layers, x, mask=mask, need_weights=need_weights)
        return self.encoder_norm(x), weights

    def decode(
        self,
        y: Tensor,
        memory: Tensor,
        memory_mask: Tensor | None,
        *,
        need_weights: bool = False,
        weights_of_layers: tuple[int, ...] = (),
        state: DecoderState | None = None,
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """``y (B, T, D)`` -> ``(B, T, D)``, self- and cross-attention weights per layer
        (every layer with ``need_weights``; else only layers ``weights_of_layers``, None elsewhere);
        with ``state``, its self-attention caches become the next step's."""
        self_weights, cross_weights = [], []
        for i, layer in enumerate(self.decoder_layers):
            out = layer(
                y, memory, memory_mask=memory_mask, causal=True, need_weights=need_weights or i in weights_of_layers,
                self_cache=state.self_caches[i] if state else None,
                cross_cache=state.cross_caches[i] if state else None,
            )
            y = out.hidden
            if state is not None:
                state.self_caches[i] = state.self_caches[i].advance(out.present)
            self_weights.append(out.self_weights)
            cross_weights.append(out.cross_weights)
        return self.decoder_norm(y), self_weights, cross_weights

    @torch.no_grad()
    def load_torch(self, module: nn.Transformer) -> None:
        """Copy the weights of a ``torch.nn.Transformer`` with the same sizes (``batch_first`` or not)."""
        ours = list(self.encoder_layers) + list(self.decoder_layers)
        theirs = list(module.encoder.layers) + list(module.decoder.layers)
        if len(ours) != len(theirs) or len(self.encoder_layers) != len(module.encoder.layers):
            raise AttnlabError("load_torch: the nn.Transformer has a different number of encoder/decoder layers")
        for mine, other in zip(ours, theirs):
            _copy(mine.self_attn, MultiHeadAttention.from_torch(other.self_attn))
            _copy(mine.ffn.linear1, other.linear1)
            _copy(mine.ffn.linear2, other.linear2)
            if isinstance(mine, DecoderBlock):
                _copy(mine.cross_attn, MultiHeadAttention.from_torch(other.multihead_attn))
                norms = (mine.self_residual, mine.cross_residual, mine.ffn_residual)
                _copy_all(norms, (other.norm1, other.norm2, other.norm3))
            else:
                _copy_all((mine.attn_residual, mine.ffn_residual), (other.norm1, other.norm2))
        for mine, other in ((self.encoder_norm, module.encoder.norm), (self.decoder_norm, module.decoder.norm)):
            if isinstance(mine, nn.LayerNorm) != isinstance(other, nn.LayerNorm):
                raise AttnlabError("load_torch: final_norm must match the nn.Transformer's final LayerNorms")
            if isinstance(mine, nn.LayerNorm):
                _copy(mine, other)


def _copy(target: nn.Module, source: nn.Module) -> None:
    target.load_state_dict(source.state_dict())


def _copy_all(residuals, norms) -> None:
    for residual, norm in zip(residuals, norms):
        _copy(residual.norm, norm)


class Transformer(PretrainedModel):
    """The encoder-decoder translator. ``model(src_ids (B, S), tgt_ids (B, T)) -> TransformerOutput``.

    ``tgt_ids`` is the decoder input (``<s> y_1 .. y_{T-1}``); ``labels (B, T)`` the
    tokens to predict (``y_1 .. y_{T-1} </s>``, ``pad_id`` where there is nothing).
    """

    config_class = TransformerConfig
    model_type = "transformer"
    renamed_weights = {"generator.": "output_proj."}  # checkpoints written before the rename

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        self.tgt_embed = nn.Embedding(c.tgt_vocab_size, c.d_model, padding_idx=c.pad_id)
        self.src_embed = self.tgt_embed if c.share_embeddings else nn.Embedding(c.src_vocab_size, c.d_model, padding_idx=c.pad_id)
        self.register_buffer("positions", sinusoidal_positions(c.max_len, c.d_model), persistent=False)
        self.dropout = nn.Dropout(c.dropout)
        self.stack = EncoderDecoder(c)
        self.output_proj = Linear(c.d_model, c.tgt_vocab_size, bias=False)
        if c.share_embeddings or c.tie_output:
            self.output_proj.weight = self.tgt_embed.weight
        self.copy_gate = CopyGate(c.d_model) if c.copy_attention else None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """Xavier-uniform matrices (as nn.Transformer); embeddings N(0, D^-1/2) since they are scaled by sqrt(D)."""
        for p in self.stack.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for embedding in {id(e): e for e in (self.src_embed, self.tgt_embed)}.values():
            nn.init.normal_(embedding.weight, std=self.config.d_model**-0.5)
            with torch.no_grad():
                embedding.weight[self.config.pad_id].zero_()

    def _is_tied(self, name: str) -> bool:
        c = self.config
        return (name == "output_proj.weight" and (c.share_embeddings or c.tie_output)) or (
            name == "src_embed.weight" and c.share_embeddings
        )

    # --- pieces -------------------------------------------------------------------
    def embed(self, ids: Tensor, embedding: nn.Embedding, offset: int = 0) -> Tensor:
        """``ids (B, L) -> (B, L, D)``: scaled embeddings + sinusoidal positions from ``offset``."""
        x = embedding(ids) * math.sqrt(self.config.d_model)
        return self.dropout(x + self.positions[offset : offset + ids.shape[1]].to(x.dtype))

    def source_mask(self, src_ids: Tensor) -> Tensor:
        """``(B, 1, 1, S)``, True on real (non-pad) source tokens."""
        return mask_from_padding(src_ids == self.config.pad_id)

    def encode(self, src_ids: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor, list[Tensor]]:
        """``src_ids (B, S)`` -> memory ``(B, S, D)``, its mask ``(B, 1, 1, S)`` and the
        per-layer weights (empty unless ``need_weights``)."""
        check_ids(src_ids, "src_ids", self.config.src_vocab_size, what="src_vocab_size", max_len=self.config.max_len)
        mask = self.source_mask(src_ids)
        memory, weights = self.stack.encode(self.embed(src_ids, self.src_embed), mask, need_weights)
        return memory, mask, weights

    # --- training / scoring -------------------------------------------------------
    def forward(
        self, src_ids: Tensor, tgt_ids: Tensor, labels: Tensor | None = None, *, need_weights: bool = False,
        align: Tensor | None = None,
    ) -> TransformerOutput:
        """``align (B, T, S)``: gold alignment targets of the labels, used with ``alignment_weight > 0``."""
        c = self.config
        memory, memory_mask, enc_weights = self.encode(src_ids, need_weights)
        check_ids(tgt_ids, "tgt_ids", c.tgt_vocab_size, what="tgt_vocab_size", shape=(src_ids.shape[0], tgt_ids.shape[-1]),
                  max_len=c.max_len)
        y = self.embed(tgt_ids, self.tgt_embed)
        guided = labels is not None and align is not None and c.alignment_weight > 0
        read = ((c.supervised_layer,) if guided else ()) + ((c.num_decoder_layers - 1,) if c.copy_attention else ())
        hidden, self_weights, cross_weights = self.stack.decode(
            y, memory, memory_mask, need_weights=need_weights, weights_of_layers=read
        )
        logits = self.scores(hidden, cross_weights[-1], src_ids)  # (B, T, V)
        loss = None if labels is None else self.loss(logits, labels)
        alignment_loss = None
        if guided:
            head = cross_weights[c.supervised_layer][:, c.alignment_head]  # (B, T, S)
            alignment_loss = guided_alignment_loss(head, align)
            loss = loss + c.alignment_weight * alignment_loss
        attentions = None
        if need_weights:
            attentions = Attentions().add_layers("encoder.{i}.self", enc_weights, kind="self", axes=("source", "source"))
            attentions.add_layers("decoder.{i}.self", self_weights, kind="causal", axes=("target", "target"))
            attentions.add_layers("decoder.{i}.cross", cross_weights, kind="cross", axes=("target", "source"))
        return TransformerOutput(logits, loss, attentions, alignment_loss)

    def scores(self, hidden: Tensor, cross: Tensor | None, src_ids: Tensor) -> Tensor:
        """``hidden (B, T, D)`` -> the logits ``(B, T, V)``; with copy attention, log-probabilities
        (fp32) mixing in the copy of ``src_ids (B, S)`` by the last layer's ``cross (B, H, T, S)``."""
        logits = self.output_proj(hidden)
        if self.copy_gate is None:
            return logits
        return copy_log_probs(logits, self.copy_gate(hidden), cross.mean(dim=1), src_ids)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Label-smoothed cross-entropy (Szegedy et al. 2016) over non-pad labels, in fp32
        (with copy attention ``logits`` are already log-probabilities: :func:`smoothed_nll`)."""
        check_labels(labels, "labels", tuple(logits.shape[:2]), logits.shape[-1], ignore=False)
        if self.copy_gate is not None:
            return smoothed_nll(logits, labels, self.config.pad_id, self.config.label_smoothing)
        return F.cross_entropy(
            logits.float().flatten(0, 1), labels.flatten(), ignore_index=self.config.pad_id,
            label_smoothing=self.config.label_smoothing,
        )

    # --- incremental decoding (the attnlab.evaluation.decoding step interface) ----
    def start(self, src_ids: Tensor) -> DecoderState:
        """Encode the source once; the caches are filled by the first :meth:`step`."""
        memory, mask, _ = self.encode(src_ids)
        n = self.config.num_decoder_layers
        return DecoderState(memory, mask, make_caches(n), make_caches(n, static=True),
                            src_ids=src_ids if self.config.copy_attention else None)

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Feed ``tokens (N,)`` at position ``state.length``; return log-probabilities ``(N, V)``."""
        log_probs, state = self.advance(tokens[:, None], state)
        return log_probs[:, -1], state

    def advance(self, ids: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Feed ``ids (N, L)`` at positions ``state.length ..``; log-probabilities ``(N, L, V)``
        (:meth:`step` feeds one token; an ONNX export traces this with :class:`PastKV` caches)."""
        check_ids(ids, "tokens", self.config.tgt_vocab_size, what="tgt_vocab_size", max_len=self.config.max_len,
                  offset=state.length)
        y = self.embed(ids, self.tgt_embed, offset=state.length)
        last = self.config.num_decoder_layers - 1
        hidden, _, cross = self.stack.decode(y, state.memory, state.memory_mask, state=state,
                                             weights_of_layers=(last,) if self.copy_gate is not None else ())
        state.length += ids.shape[1]
        return F.log_softmax(self.scores(hidden, cross[-1], state.src_ids).float(), dim=-1), state

    def reorder(self, state: DecoderState, index: Tensor) -> DecoderState:
        """Keep rows ``index (N_new,)`` of every tensor and cache (beam search)."""
        for cache in state.self_caches + state.cross_caches:
            cache.reorder(index)
        state.memory = state.memory.index_select(0, index)
        state.memory_mask = state.memory_mask.index_select(0, index)
        if state.src_ids is not None:
            state.src_ids = state.src_ids.index_select(0, index)
        return state
