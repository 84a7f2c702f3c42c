"""The RNN encoder-decoder translator with attention (Bahdanau et al. 2015; Luong et al. 2015).

Encoder: embeddings -> bidirectional GRU/LSTM; h_j = [fwd_j; bwd_j] (each direction H/2
wide, so the memory is H wide like the decoder state). Decoder, one step per target
token, with any attention mechanism plugged in (:mod:`attnlab.models.seq2seq_attention`):

    Luong style (attention after the RNN step, input feeding; TF Addons' AttentionWrapper):
        s_t = RNN([E y_{t-1}; a_{t-1}], s_{t-1})     (input_feeding=False: RNN(E y_{t-1}, s_{t-1}))
        c_t = attend(s_t, h)
        a_t = tanh(W_c [s_t; c_t])          (attention_layer_size; without it a_t = c_t)
    Bahdanau style (attention before the RNN step):
        c_t = attend(s_{t-1}, h)
        s_t = RNN([E y_{t-1}; c_t], s_{t-1})
        a_t = tanh(W_c [s_t; c_t])          (without attention_layer_size a_t = [s_t; c_t])
    p(y_t | y_<t, x) = softmax(W_o a_t)

Guided alignment (``alignment_weight`` = lambda > 0, and gold targets ``align`` passed to
:meth:`Seq2Seq.forward`): loss = CE + lambda * CE(gold alignment, attention)
(:mod:`attnlab.attention.guided_alignment`).

``attention="none"`` gives the fixed-context encoder-decoder: c_t is the same mean of
the encoder states at every step. The decoder starts from s_0 = tanh(W_b [fwd_S; bwd_1]).

Notation: B batch, S source length, T target length, E embedding width, H hidden
width, V vocabulary, L layers, N rows in beam search.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.attention.guided_alignment import guided_alignment_loss
from attnlab.attention.maps import Attentions
from attnlab.errors import AttnlabError
from attnlab.models.base import PretrainedModel, check_ids, check_labels
from attnlab.models.seq2seq_attention import (
    ATTENTION_NAMES,
    AttentionState,
    DecoderAttention,
    FixedContext,
    build_attention,
)

RNNState = Tensor | tuple[Tensor, Tensor]  # GRU: h (L, N, H); LSTM: (h, c)


@dataclass
class Seq2SeqConfig:
    """Sizes and choices of the RNN translator; see :data:`SEQ2SEQ_PRESETS`."""

    src_vocab_size: int = 1000
    tgt_vocab_size: int = 1000
    embed_dim: int = 128
    hidden_dim: int = 256
    cell: str = "gru"  # "gru" | "lstm"
    num_layers: int = 1
    dropout: float = 0.1
    attention: str = "bahdanau"  # one of ATTENTION_NAMES (used when no module is passed in)
    attention_dim: int = 128
    attention_style: str = "luong"  # "luong" (after the RNN step, input feeding) | "bahdanau" (before)
    attention_layer_size: int | None = 256
    input_feeding: bool = True  # Luong style: feed a_{t-1} into the next step
    window: int = 5  # local attention half-width D
    coverage_weight: float = 0.0  # lambda of the coverage loss (See et al. 2017); 0: Tu et al.'s coverage in the score only
    alignment_weight: float = 0.0  # lambda of guided alignment training (Garg et al. 2019); 0: unsupervised attention
    label_smoothing: float = 0.0
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    max_len: int = 256

    def __post_init__(self) -> None:
        if self.cell not in ("gru", "lstm"):
            raise AttnlabError(f"Seq2SeqConfig.cell: expected 'gru' or 'lstm', got {self.cell!r}")
        if self.attention not in ATTENTION_NAMES:
            raise AttnlabError(f"Seq2SeqConfig.attention: expected one of {ATTENTION_NAMES}, got {self.attention!r}")
        if self.attention_style not in ("luong", "bahdanau"):
            raise AttnlabError(f"Seq2SeqConfig.attention_style: expected 'luong' or 'bahdanau', got {self.attention_style!r}")
        if self.hidden_dim % 2:
            raise AttnlabError(f"Seq2SeqConfig.hidden_dim must be even (two encoder directions), got {self.hidden_dim}")
        if not self.alignment_weight >= 0 or (self.alignment_weight and self.attention == "none"):
            raise AttnlabError(
                f"Seq2SeqConfig.alignment_weight: expected >= 0 (and 0 with attention='none', which has no "
                f"weights to guide), got {self.alignment_weight}"
            )
        for name in ("src_vocab_size", "tgt_vocab_size", "embed_dim", "num_layers", "attention_dim", "max_len"):
            if getattr(self, name) < 1:
                raise AttnlabError(f"Seq2SeqConfig.{name}: expected >= 1, got {getattr(self, name)}")

    # The cross-attention shape the translation tools read (attnlab.apps.translate): one
    # decoder attention is one layer with one head.
    @property
    def num_decoder_layers(self) -> int:
        return 1

    @property
    def num_heads(self) -> int:
        return 1


SEQ2SEQ_PRESETS = {
    "tiny": Seq2SeqConfig(embed_dim=32, hidden_dim=64, attention_dim=32, attention_layer_size=64, dropout=0.0),
    # `attnlab compare`: reaches BLEU > 80 on the default corpus in ~600 steps with Bahdanau attention
    "compact": Seq2SeqConfig(embed_dim=64, hidden_dim=128, attention_dim=64, attention_layer_size=128, dropout=0.0),
    "small": Seq2SeqConfig(),
    "base": Seq2SeqConfig(embed_dim=256, hidden_dim=512, attention_dim=256, attention_layer_size=512, num_layers=2),
}


@dataclass
class Seq2SeqOutput:
    """``logits (B, T, V)``; ``loss`` when labels were given (cross-entropy + the
    mechanism's ``attention_loss`` + lambda * the guided ``alignment_loss``);
    ``attentions`` when asked: one map ``decoder.0.cross (B, 1, T, S)``, the alignments
    (one layer, one head; empty for ``attention="none"``, which has no weights).
    """

    logits: Tensor
    loss: Tensor | None = None
    attentions: Attentions | None = None
    attention_loss: Tensor | None = None
    alignment_loss: Tensor | None = None


@dataclass
class Seq2SeqState:
    """Incremental decoding state (the :mod:`attnlab.evaluation.decoding` step interface)."""

    rnn: RNNState
    attention: AttentionState
    feed: Tensor  # (N, F) what the next step is fed: a_{t-1} (Luong style; F = 0 without input feeding) or c_t


class Seq2Seq(PretrainedModel):
    """RNN encoder-decoder; ``attention`` is a mechanism module, or built from ``config.attention``."""

    config_class = Seq2SeqConfig
    model_type = "seq2seq"

    @property
    def renamed_weights(self) -> dict[str, str]:
        """Older weight names, read when a checkpoint still has them: the output map was
        ``generator``; location and coverage attention held their additive score's weights
        themselves before they were built on :class:`AdditiveAttention` (only for those two:
        Bahdanau's own ``v`` keeps its name)."""
        renames = {"generator.": "output_proj."}
        if self.config.attention in ("location", "coverage"):
            old = "attention.mechanism."
            renames.update({old + a: old + "additive." + b for a, b in
                            (("query_layer.", "query_proj."), ("memory_layer.", "key_proj."), ("v", "v"))})
        return renames

    def __init__(self, config: Seq2SeqConfig, attention: nn.Module | None = None):
        super().__init__()
        self.config = c = config
        rnn = nn.GRU if c.cell == "gru" else nn.LSTM
        hidden = c.hidden_dim
        self.src_embed = nn.Embedding(c.src_vocab_size, c.embed_dim, padding_idx=c.pad_id)
        self.tgt_embed = nn.Embedding(c.tgt_vocab_size, c.embed_dim, padding_idx=c.pad_id)
        self.encoder = rnn(c.embed_dim, hidden // 2, c.num_layers, batch_first=True, bidirectional=True,
                           dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.bridge = nn.Linear(hidden, hidden)
        mechanism = build_attention(c.attention, hidden, hidden, c.attention_dim, window=c.window) \
            if attention is None else attention
        self.attention = DecoderAttention(mechanism, coverage_weight=c.coverage_weight)
        self.context_dim = hidden  # width of c_t: the memory width
        self.output_dim = c.attention_layer_size or (hidden if self.luong_style else 2 * hidden)
        self.decoder = rnn(c.embed_dim + self.feed_dim, hidden, c.num_layers, batch_first=True,
                           dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.attention_layer = nn.Linear(2 * hidden, c.attention_layer_size, bias=False) \
            if c.attention_layer_size else None
        self.dropout = nn.Dropout(c.dropout)
        self.output_proj = nn.Linear(self.output_dim, c.tgt_vocab_size)

    @property
    def feed_dim(self) -> int:
        """Width of what one step feeds the next: a_{t-1} (Luong style, input feeding), c_t (Bahdanau style)."""
        if not self.luong_style:
            return self.context_dim
        return self.output_dim if self.config.input_feeding else 0

    @property
    def luong_style(self) -> bool:
        return self.config.attention_style == "luong" or isinstance(self.attention.mechanism, FixedContext)

    # --- encoder ------------------------------------------------------------------
    def encode(self, src_ids: Tensor) -> tuple[Tensor, Tensor, RNNState]:
        """``src_ids (B, S)`` -> memory ``(B, S, H)``, mask ``(B, S)`` and the decoder's s_0."""
        check_ids(src_ids, "src_ids", self.config.src_vocab_size, what="src_vocab_size", max_len=self.config.max_len)
        mask = src_ids != self.config.pad_id  # (B, S)
        lengths = mask.sum(dim=1).clamp_min(1).cpu()
        packed = pack_padded_sequence(self.dropout(self.src_embed(src_ids)), lengths, batch_first=True,
                                      enforce_sorted=False)
        packed_out, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=src_ids.shape[1])  # (B, S, H)
        return memory, mask, self._bridge(final)

    def _bridge(self, final: RNNState) -> RNNState:
        """Encoder finals ``(2L, B, H/2)`` -> decoder s_0 ``(L, B, H)`` (LSTM: h through the bridge, c as is)."""
        def join(t: Tensor) -> Tensor:  # (2L, B, H/2) -> (L, B, H): [fwd; bwd] per layer
            return t.view(self.config.num_layers, 2, *t.shape[1:]).transpose(1, 2).flatten(2)

        if isinstance(final, tuple):
            return torch.tanh(self.bridge(join(final[0]))), join(final[1])
        return torch.tanh(self.bridge(join(final)))

    # --- one decoder step ---------------------------------------------------------
    def start(self, src_ids: Tensor) -> Seq2SeqState:
        """Encode the source once and set up the first decoder step."""
        memory, mask, rnn_state = self.encode(src_ids)
        feed = memory.new_zeros(memory.shape[0], self.feed_dim)  # shape, not len(): a traced graph keeps B dynamic
        return Seq2SeqState(rnn_state, self.attention.init_state(memory, mask), feed)

    def _decode_step(self, tokens: Tensor, state: Seq2SeqState):
        """Feed ``tokens (N,)``: returns the output vector a_t ``(N, F)``, the attention output and the new state."""
        emb = self.dropout(self.tgt_embed(tokens))  # (N, E)
        if self.luong_style:
            rnn_out, rnn_state = self.decoder(torch.cat([emb, state.feed], -1)[:, None], state.rnn)
            top = rnn_out[:, 0]  # (N, H)
            attn, attn_state = self.attention(top, state.attention)
        else:
            query = (state.rnn[0] if isinstance(state.rnn, tuple) else state.rnn)[-1]  # s_{t-1}, top layer (N, H)
            attn, attn_state = self.attention(query, state.attention)
            rnn_out, rnn_state = self.decoder(torch.cat([emb, attn.output], -1)[:, None], state.rnn)
            top = rnn_out[:, 0]
        joined = torch.cat([top, attn.output.to(top.dtype)], -1)  # (N, 2H)
        if self.attention_layer is not None:
            out = torch.tanh(self.attention_layer(joined))
        else:
            out = attn.output if self.luong_style else joined
        feed = attn.output if not self.luong_style else out[:, : self.feed_dim]
        return self.dropout(out), attn, Seq2SeqState(rnn_state, attn_state, feed)

    def step(self, tokens: Tensor, state: Seq2SeqState) -> tuple[Tensor, Seq2SeqState]:
        """Feed ``tokens (N,)``; return log-probabilities ``(N, V)`` of the next token."""
        out, _, state = self._decode_step(tokens, state)
        return F.log_softmax(self.output_proj(out).float(), dim=-1), state

    def reorder(self, state: Seq2SeqState, index: Tensor) -> Seq2SeqState:
        """Keep rows ``index (N_new,)`` (beam search)."""
        rnn = tuple(t.index_select(1, index) for t in state.rnn) if isinstance(state.rnn, tuple) \
            else state.rnn.index_select(1, index)
        return Seq2SeqState(rnn, state.attention.reorder(index), state.feed.index_select(0, index))

    # --- training / scoring -------------------------------------------------------
    def forward(
        self, src_ids: Tensor, tgt_ids: Tensor, labels: Tensor | None = None, *, need_weights: bool = False,
        align: Tensor | None = None,
    ) -> Seq2SeqOutput:
        """Teacher forcing: ``src_ids (B, S)``, ``tgt_ids (B, T)`` (BOS + target), ``labels (B, T)``
        (target + EOS, pad ignored). Returns logits ``(B, T, V)`` and, when asked, alignments ``(B, T, S)``.
        ``align (B, T, S)``: gold alignment targets of the labels, used when ``alignment_weight > 0``.
        """
        check_ids(tgt_ids, "tgt_ids", self.config.tgt_vocab_size, what="tgt_vocab_size", max_len=self.config.max_len)
        if src_ids.dim() == 2 and src_ids.shape[0] != tgt_ids.shape[0]:
            raise AttnlabError(f"src_ids and tgt_ids must have the same batch size, got {src_ids.shape[0]} and {tgt_ids.shape[0]}")
        state = self.start(src_ids)
        outputs, weights, log_probs = [], [], []
        for t in range(tgt_ids.shape[1]):
            out, attn, state = self._decode_step(tgt_ids[:, t], state)
            outputs.append(out)
            weights.append(attn.weights)
            log_probs.append(attn.log_prob)
        logits = self.output_proj(torch.stack(outputs, dim=1))  # (B, T, V)
        alignments = None if weights[0] is None else torch.stack(weights, dim=1)  # (B, T, S)
        attentions = None
        if need_weights:
            attentions = Attentions().add_layers(
                "decoder.{i}.cross", [] if alignments is None else [alignments[:, None]],  # (B, 1, T, S)
                kind="cross", axes=("target", "source"),
            )
        if labels is None:
            return Seq2SeqOutput(logits, attentions=attentions)
        log_prob = None if log_probs[0] is None else torch.stack(log_probs, dim=1)  # (B, T)
        loss, attention_loss = self.loss(logits, labels, alignments, log_prob)
        alignment_loss = None
        if align is not None and self.config.alignment_weight:
            if alignments is None:
                raise AttnlabError("align: this decoder's attention has no weights to guide")
            alignment_loss = guided_alignment_loss(alignments, align)
            loss = loss + self.config.alignment_weight * alignment_loss
        return Seq2SeqOutput(logits, loss, attentions, attention_loss, alignment_loss)

    def loss(
        self, logits: Tensor, labels: Tensor, alignments: Tensor | None, log_prob: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """Cross-entropy over non-pad labels (fp32) plus the attention's auxiliary loss."""
        check_labels(labels, "labels", tuple(logits.shape[:2]), logits.shape[-1], ignore=False)
        target_mask = labels != self.config.pad_id  # (B, T)
        token_nll = F.cross_entropy(
            logits.float().transpose(1, 2), labels, ignore_index=self.config.pad_id,
            label_smoothing=self.config.label_smoothing, reduction="none",
        )  # (B, T)
        loss = token_nll.sum() / target_mask.sum().clamp_min(1)
        extra = self.attention.auxiliary_loss(alignments, log_prob, token_nll.detach(), target_mask) \
            if self.training else None
        return (loss if extra is None else loss + extra), extra
