"""BERT (Devlin et al. 2019): a bidirectional Transformer encoder over word pieces.

    h_0 = LN(E_tok[x_i] + E_seg[s_i] + E_pos[i])                      embeddings
    h_l = TransformerBlock_l(h_{l-1})      post-LN, GELU (Vaswani et al. 2017)
    pooled = tanh(W_p h_L[CLS] + b_p)                                 pooler
    MLM:  logits_i = LN(gelu(W_t h_L,i + b_t)) E_tok^T + b_v          tied to E_tok
    NSP:  logits   = W_n pooled + b_n                                 IsNext / NotNext
    classifier: logits = W_c dropout(pooled) + b_c

Heads (``BERTConfig.head``): ``"base"`` (BertModel), ``"pretraining"`` (MLM + NSP,
BertForPreTraining), ``"mlm"`` (BertForMaskedLM, no pooler), ``"lm"`` (BertLMHeadModel:
the MLM head predicting the next token), ``"nsp"`` (BertForNextSentencePrediction),
``"classifier"`` (BertForSequenceClassification). ``is_decoder=True`` makes the
self-attention causal (token i sees tokens <= i), as HF does; ``add_cross_attention``
adds a cross-attention sub-layer after it (the decoder of an encoder-decoder, HF's
``BertLMHeadModel`` in an ``EncoderDecoderModel``), attending to ``encoder_hidden_states``:

    h = LN(h + SelfAttn(h, causal));  h = LN(h + CrossAttn(h, enc));  h = LN(h + FFN(h))

``position_embedding_type`` ``"relative_key"`` (Shaw et al. 2018) or
``"relative_key_query"`` (Huang et al. 2020, method 4) replaces the absolute positions
by a learned vector per distance, r_{i-j} (one table per layer), in the scores — a score
bias of the layer's multi-head attention
(:class:`~attnlab.attention.positional.RelativePositionBias`):

    e_ij = (q_i . k_j + q_i . r_{i-j} [+ k_j . r_{i-j}]) / sqrt(Dh)

Checkpoints are HuggingFace folders (:mod:`attnlab.interop.hf_bert`), so
``transformers`` reads what attnlab writes.

Notation: B batch, L sequence length, S encoder length, D hidden_size, H heads, V vocab_size,
C labels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.maps import Attentions
from attnlab.attention.masks import causal_mask
from attnlab.attention.multi_head import MultiHeadAttention
from attnlab.attention.positional import RelativePositionBias
from attnlab.config import config_from_dict, config_to_dict, preset
from attnlab.errors import AttnlabError
from attnlab.interop import hf_bert
from attnlab.kernels.cross_entropy import cross_entropy
from attnlab.kernels.linear import Linear, linear
from attnlab.layers.blocks import EncoderConfig, encoder_stack
from attnlab.layers.feed_forward import get_activation
from attnlab.models.base import IGNORE_INDEX, PretrainedModel, check_ids, check_labels
from attnlab.models.gpt import causal_lm_loss

HEADS = ("base", "pretraining", "mlm", "lm", "nsp", "classifier")
POSITION_TYPES = ("absolute", "relative_key", "relative_key_query")
MLM_HEADS = ("pretraining", "mlm", "lm")  # the heads with the vocabulary projection


@dataclass
class BERTConfig(EncoderConfig):
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    classifier_dropout: float | None = None
    pad_token_id: int = 0
    head: str = "base"
    add_pooler: bool = True
    is_decoder: bool = False  # causal self-attention (HF's BertLMHeadModel)
    add_cross_attention: bool = False  # a decoder attending to encoder_hidden_states
    position_embedding_type: str = "absolute"

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise AttnlabError(f"BERTConfig.head = {self.head!r}; expected one of {HEADS}")
        if self.head == "classifier" and not self.labels:
            raise AttnlabError("BERTConfig.labels: the classifier head needs at least one label name")
        if self.position_embedding_type not in POSITION_TYPES:
            raise AttnlabError(
                f"BERTConfig.position_embedding_type = {self.position_embedding_type!r}; expected one of {POSITION_TYPES}"
            )
        if self.add_cross_attention and not self.is_decoder:
            raise AttnlabError("BERTConfig.add_cross_attention needs is_decoder=True (cross-attention follows causal self-attention)")
        if self.head in ("pretraining", "nsp", "classifier") and not self.add_pooler:
            raise AttnlabError(f"BERTConfig.add_pooler: the {self.head!r} head needs the pooler")
        self.check_sizes("vocab_size", "max_positions")


PRESETS = {
    "base": BERTConfig(),  # BERT-base: 110M parameters
    "small": BERTConfig(
        vocab_size=4000, hidden_size=128, num_layers=2, num_heads=2, intermediate_size=512, max_positions=128
    ),
    "tiny": BERTConfig(vocab_size=2000, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=64),
}


def bert_config(name: str, **overrides) -> BERTConfig:
    """A named preset (``"base"``, ``"small"``, ``"tiny"``) with fields overridden."""
    return preset(PRESETS, name, **overrides)


@dataclass
class BERTOutput:
    """``last_hidden_state (B, L, D)``; ``pooler_output (B, D)``; ``mlm_logits (B, L, V)``
    (``(M, V)`` for the M labeled positions when ``mlm_labels`` are given; the next-token
    logits of the ``lm`` head); ``nsp_logits (B, 2)``; ``logits (B, C)``; ``attentions``
    with ``need_weights=True``: ``layers.{l}.self (B, H, L, L)`` (kind "causal" when
    ``is_decoder``) and ``layers.{l}.cross (B, H, L, S)`` with encoder states."""

    last_hidden_state: Tensor
    pooler_output: Tensor | None = None
    mlm_logits: Tensor | None = None
    nsp_logits: Tensor | None = None
    logits: Tensor | None = None
    attentions: Attentions | None = None
    loss: Tensor | None = None


class BERTEmbeddings(nn.Module):
    """Token + segment + position embeddings, LayerNorm, dropout: ids ``(B, L)`` -> ``(B, L, D)``."""

    def __init__(self, config: BERTConfig):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_positions, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.absolute = config.position_embedding_type == "absolute"  # relative: positions in the scores

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        x = self.word(input_ids) + self.token_type(token_type_ids)
        if self.absolute:
            x = x + self.position(torch.arange(input_ids.shape[1], device=input_ids.device))
        return self.dropout(self.norm(x))


class BERT(PretrainedModel):
    """BERT encoder with the head named by ``config.head``; see the module docstring."""

    config_class = BERTConfig
    model_type = "bert"

    def __init__(self, config: BERTConfig):
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.embeddings = BERTEmbeddings(config)
        self.layers = encoder_stack(config, norm_first=False, attention=self._self_attention,
                                    cross_attention=config.add_cross_attention)
        self.pooler = Linear(d, d) if config.add_pooler else None
        if config.head in MLM_HEADS:
            self.mlm_dense = Linear(d, d)
            self.mlm_norm = nn.LayerNorm(d, eps=config.norm_eps)
            self.mlm_bias = nn.Parameter(torch.zeros(config.vocab_size))
        if config.head in ("pretraining", "nsp"):
            self.nsp = Linear(d, 2)
        if config.head == "classifier":
            p = config.dropout if config.classifier_dropout is None else config.classifier_dropout
            self.classifier_dropout = nn.Dropout(p)
            self.classifier = Linear(d, config.num_labels)
        self.apply(self._init_weights)

    def _self_attention(self) -> MultiHeadAttention:
        """A layer's self-attention; relative positions enter as its score bias."""
        c = self.config
        bias = None
        if c.position_embedding_type != "absolute":
            bias = RelativePositionBias(c.max_positions, c.hidden_size // c.num_heads,
                                        key_query=c.position_embedding_type == "relative_key_query")
        return MultiHeadAttention(c.hidden_size, c.num_heads, dropout=c.attention_dropout, score_bias=bias)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """N(0, 0.02) weights and zero biases, as BERT was trained."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])

    def mlm_logits(self, hidden: Tensor) -> Tensor:
        """The MLM head on hidden states ``(..., D) -> (..., V)``, decoder tied to the word embeddings."""
        h = self.mlm_norm(get_activation(self.config.activation)(self.mlm_dense(hidden)))
        return linear(h, self.embeddings.word.weight, self.mlm_bias)

    def _attention_mask(self, input_ids: Tensor, attention_mask: Tensor | None) -> Tensor | None:
        """``(B, 1, 1, L)`` True on real keys (``(B, 1, L, L)`` with causality when
        ``is_decoder``), or None when nothing is masked (the blocks then pass ``causal``)."""
        if attention_mask is None:
            return None
        if attention_mask.shape != input_ids.shape:
            raise AttnlabError(
                f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)} "
                f"(1 = real token, 0 = padding), got {tuple(attention_mask.shape)}"
            )
        keep = attention_mask.bool()
        if not torch.compiler.is_compiling() and bool(keep.all()):  # a traced graph keeps the mask
            return None
        mask = keep[:, None, None, :]  # (B, 1, 1, L)
        if self.config.is_decoder:
            length = input_ids.shape[1]
            mask = mask & causal_mask(length, length, device=input_ids.device)  # (B, 1, L, L)
        return mask

    def encode(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        need_weights: bool = False,
        *,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
    ) -> BERTOutput:
        """Embeddings, encoder and pooler (no task head); a decoder (``add_cross_attention``)
        attends to ``encoder_hidden_states (B, S, D)`` where ``encoder_attention_mask (B, S)``
        is 1 (HF's arguments; without encoder states the cross-attention is skipped, as HF does)."""
        c = self.config
        check_ids(input_ids, "input_ids", c.vocab_size, max_len=c.max_positions, length_name="max_positions")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        check_ids(token_type_ids, "token_type_ids", c.type_vocab_size, what="type_vocab_size", shape=input_ids.shape)
        mask = self._attention_mask(input_ids, attention_mask)
        memory_mask = self._encoder_mask(input_ids, encoder_hidden_states, encoder_attention_mask)
        x = self.embeddings(input_ids, token_type_ids)
        causal = c.is_decoder and mask is None
        self_weights, cross_weights = [], []
        for block in self.layers:
            if c.add_cross_attention:
                out = block(x, encoder_hidden_states, self_mask=mask, memory_mask=memory_mask, causal=causal,
                            need_weights=need_weights)
            else:
                out = block(x, mask=mask, causal=causal, need_weights=need_weights)
            x = out.hidden
            self_weights.append(out.self_weights)
            cross_weights.append(out.cross_weights)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None
        attentions = None
        if need_weights:
            kind = "causal" if c.is_decoder else "self"
            attentions = Attentions().add_layers("layers.{i}.self", self_weights, kind=kind, axes=("tokens", "tokens"))
            if encoder_hidden_states is not None:
                attentions.add_layers("layers.{i}.cross", cross_weights, kind="cross", axes=("tokens", "source"))
        return BERTOutput(last_hidden_state=x, pooler_output=pooled, attentions=attentions)

    def _encoder_mask(self, input_ids: Tensor, states: Tensor | None, mask: Tensor | None) -> Tensor | None:
        """``encoder_attention_mask (B, S)`` checked -> ``(B, 1, 1, S)`` True on real keys, or None."""
        if states is None:
            if mask is not None:
                raise AttnlabError("encoder_attention_mask given without encoder_hidden_states")
            return None
        if not self.config.add_cross_attention:
            raise AttnlabError("encoder_hidden_states: this BERT has no cross-attention (add_cross_attention=False)")
        d = self.config.hidden_size
        if states.dim() != 3 or states.shape[0] != input_ids.shape[0] or states.shape[2] != d:
            raise AttnlabError(f"encoder_hidden_states must have shape (B, S, {d}) with B = {input_ids.shape[0]}, "
                               f"got {tuple(states.shape)}")
        if mask is None:
            return None
        if mask.shape != states.shape[:2]:
            raise AttnlabError(f"encoder_attention_mask must have shape (B, S) = {tuple(states.shape[:2])} "
                               f"(1 = real token, 0 = padding), got {tuple(mask.shape)}")
        return mask.bool()[:, None, None, :]  # (B, 1, 1, S)

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        need_weights: bool = False,
        mlm_labels: Tensor | None = None,
        next_sentence_label: Tensor | None = None,
        labels: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
    ) -> BERTOutput:
        """Encode and apply the head; a loss is returned when its labels are given.

        ``mlm_labels (B, L)`` hold the original id at masked positions and -100 elsewhere;
        when given, ``mlm_logits`` is ``(M, V)``: the M labeled positions in row-major order;
        ``next_sentence_label (B,)`` is 0 for IsNext, 1 for NotNext; ``labels (B,)`` classes
        (the ``lm`` head: ``labels (B, L)`` token ids, shifted inside as HF does);
        ``encoder_hidden_states``/``encoder_attention_mask``: see :meth:`encode`.
        """
        out = self.encode(input_ids, token_type_ids, attention_mask, need_weights,
                          encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)
        c, b, length = self.config, input_ids.shape[0], input_ids.shape[1]
        losses = []
        if c.head in ("pretraining", "mlm") and mlm_labels is not None:
            check_labels(mlm_labels, "mlm_labels", (b, length), c.vocab_size)
            # Only the labeled positions need the (large) vocabulary projection, as in
            # BERT's own pre-training code (gather_indexes): logits (M, V) of M positions.
            chosen = mlm_labels != IGNORE_INDEX  # (B, L)
            out.mlm_logits = self.mlm_logits(out.last_hidden_state[chosen])  # (M, V)
            losses.append(cross_entropy(out.mlm_logits, mlm_labels[chosen]))  # F.cross_entropy in row blocks
        elif c.head in MLM_HEADS:
            out.mlm_logits = self.mlm_logits(out.last_hidden_state)  # (B, L, V)
        if c.head == "lm" and labels is not None:
            losses.append(causal_lm_loss(out.mlm_logits, labels))  # checks the labels
        if c.head in ("pretraining", "nsp"):
            out.nsp_logits = self.nsp(out.pooler_output)  # (B, 2)
            if next_sentence_label is not None:
                check_labels(next_sentence_label, "next_sentence_label", (b,), 2, ignore=False)
                losses.append(F.cross_entropy(out.nsp_logits, next_sentence_label))
        if c.head == "classifier":
            out.logits = self.classifier(self.classifier_dropout(out.pooler_output))  # (B, C)
            if labels is not None:
                check_labels(labels, "labels", (b,), c.num_labels)
                losses.append(F.cross_entropy(out.logits, labels))
        if losses:
            out.loss = sum(losses)
        return out

    def with_head(self, head: str, labels: list[str] | None = None) -> BERT:
        """A new BERT with this one's embeddings, encoder and pooler and a fresh ``head``
        (e.g. a classifier to fine-tune from a pre-trained checkpoint)."""
        config = dataclasses.replace(self.config, head=head, labels=list(labels or []), add_pooler=head not in ("mlm", "lm"))
        model = BERT(config).to(self.embeddings.word.weight.device)
        missing, _ = model.load_state_dict(self.state_dict(), strict=False)
        shared = ("embeddings.", "layers.") + (("pooler.",) if self.config.add_pooler else ())
        not_copied = [k for k in missing if k.startswith(shared)]
        if not_copied:
            raise AttnlabError(f"with_head: weights {not_copied[:3]} do not fit the new config")
        return model

    # --- HuggingFace interop (attnlab.interop.hf_bert: dicts in, dicts out) ---
    @classmethod
    def from_hf(cls, hf_model: nn.Module) -> BERT:
        """Copy a ``transformers`` BertModel / BertForPreTraining / BertForMaskedLM /
        BertLMHeadModel / BertForNextSentencePrediction / BertForSequenceClassification:
        equal outputs on the same inputs."""
        return cls._copy_hf(hf_model)

    def _export_checkpoint(self) -> tuple[dict, dict[str, Tensor]]:
        return hf_bert.config_to_hf(config_to_dict(self.config)), hf_bert.weights_to_hf(self.state_dict(), self.config.head)

    @classmethod
    def _import_checkpoint(cls, config: dict, tensors: dict[str, Tensor]) -> BERT:
        fields = hf_bert.config_from_hf(config, hf_bert.has_pooler(tensors))
        model = cls(config_from_dict(BERTConfig, fields, hf_bert.ENCODER_NAMES))
        return model._load_weights(hf_bert.weights_from_hf(tensors, model.config.add_cross_attention), "BERT checkpoint")


@torch.no_grad()
def fill_mask(model: BERT, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each ``[MASK]`` in ``text``, the ``top_k`` most likely tokens and probabilities."""
    if model.config.head not in MLM_HEADS:
        raise AttnlabError(f"fill_mask: the model has a {model.config.head!r} head; it needs an MLM head")
    if top_k < 1:
        raise AttnlabError(f"top_k: expected >= 1, got {top_k}")
    ids = [tokenizer.cls_id, *tokenizer.encode(text), tokenizer.sep_id]
    positions = [i for i, t in enumerate(ids) if t == tokenizer.mask_id]
    if not positions:
        raise AttnlabError(f"text: no {tokenizer.special_tokens.mask} token in {text!r}")
    device = next(model.parameters()).device  # a BERT, or an ONNX export's runtime (the CPU)
    logits = model(torch.tensor([ids], device=device)).mlm_logits[0, positions]  # (M, V)
    probs, top = logits.float().softmax(-1).topk(min(top_k, logits.shape[-1]), dim=-1)  # (M, k)
    return [
        [(tokenizer.id_to_token(int(t)), float(p)) for t, p in zip(row_ids, row_probs)]
        for row_ids, row_probs in zip(top, probs)
    ]
