"""BERT (Devlin et al. 2019): a bidirectional Transformer encoder over word pieces.

    h_0 = LN(E_tok[x_i] + E_seg[s_i] + E_pos[i])                      embeddings
    h_l = EncoderBlock_l(h_{l-1})          post-LN, GELU (Vaswani et al. 2017)
    pooled = tanh(W_p h_L[CLS] + b_p)                                 pooler
    MLM:  logits_i = LN(gelu(W_t h_L,i + b_t)) E_tok^T + b_v          tied to E_tok
    NSP:  logits   = W_n pooled + b_n                                 IsNext / NotNext
    classifier: logits = W_c dropout(pooled) + b_c

Heads (``BERTConfig.head``): ``"base"`` (BertModel), ``"pretraining"`` (MLM + NSP,
BertForPreTraining), ``"mlm"`` (BertForMaskedLM, no pooler), ``"classifier"``
(BertForSequenceClassification). Checkpoints are HuggingFace folders
(:mod:`attnlab.interop.hf_bert`), so ``transformers`` reads what attnlab writes.

Notation: B batch, L sequence length, D hidden_size, H heads, V vocab_size, C labels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.config import preset
from attnlab.errors import AttnlabError
from attnlab.layers.blocks import EncoderConfig, encoder_stack, run_encoder
from attnlab.layers.feed_forward import get_activation
from attnlab.kernels.linear import Linear, linear
from attnlab.models.base import PretrainedModel

HEADS = ("base", "pretraining", "mlm", "classifier")
IGNORE_INDEX = -100  # label of positions that carry no loss (HuggingFace's convention)


@dataclass
class BERTConfig(EncoderConfig):
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    classifier_dropout: float | None = None
    pad_token_id: int = 0
    head: str = "base"
    add_pooler: bool = True

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise AttnlabError(f"BERTConfig.head = {self.head!r}; expected one of {HEADS}")
        if self.head == "classifier" and not self.labels:
            raise AttnlabError("BERTConfig.labels: the classifier head needs at least one label name")
        if self.head in ("pretraining", "classifier") and not self.add_pooler:
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
    (``(M, V)`` for the M labeled positions when ``mlm_labels`` are given);
    ``nsp_logits (B, 2)``; ``logits (B, C)``; ``attentions``: per layer ``(B, H, L, L)``."""

    last_hidden_state: Tensor
    pooler_output: Tensor | None = None
    mlm_logits: Tensor | None = None
    nsp_logits: Tensor | None = None
    logits: Tensor | None = None
    attentions: tuple[Tensor, ...] | None = None
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

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word(input_ids) + self.token_type(token_type_ids) + self.position(positions)
        return self.dropout(self.norm(x))


def _check_ids(name: str, ids: Tensor, shape: tuple[int, ...], high: int, what: str) -> None:
    if ids.shape != shape or ids.dtype not in (torch.int64, torch.int32):
        raise AttnlabError(f"{name} must be an integer tensor of shape {shape}, got {ids.dtype} {tuple(ids.shape)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= high):
        raise AttnlabError(f"{name}: ids must be in [0, {high}) ({what}), got [{int(ids.min())}, {int(ids.max())}]")


class BERT(PretrainedModel):
    """BERT encoder with the head named by ``config.head``; see the module docstring."""

    config_class = BERTConfig
    model_type = "bert"

    def __init__(self, config: BERTConfig):
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.embeddings = BERTEmbeddings(config)
        self.layers = encoder_stack(config, norm_first=False)
        self.pooler = Linear(d, d) if config.add_pooler else None
        if config.head in ("pretraining", "mlm"):
            self.mlm_dense = Linear(d, d)
            self.mlm_norm = nn.LayerNorm(d, eps=config.norm_eps)
            self.mlm_bias = nn.Parameter(torch.zeros(config.vocab_size))
        if config.head == "pretraining":
            self.nsp = Linear(d, 2)
        if config.head == "classifier":
            p = config.dropout if config.classifier_dropout is None else config.classifier_dropout
            self.classifier_dropout = nn.Dropout(p)
            self.classifier = Linear(d, config.num_labels)
        self.apply(self._init_weights)

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
        if attention_mask is None:
            return None
        if attention_mask.shape != input_ids.shape:
            raise AttnlabError(
                f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)} "
                f"(1 = real token, 0 = padding), got {tuple(attention_mask.shape)}"
            )
        keep = attention_mask.bool()
        return None if bool(keep.all()) else keep[:, None, None, :]  # (B, 1, 1, L)

    def encode(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        need_weights: bool = False,
    ) -> BERTOutput:
        """Embeddings, encoder and pooler (no task head)."""
        if input_ids.dim() != 2:
            raise AttnlabError(f"input_ids must have shape (B, L), got {tuple(input_ids.shape)}")
        b, length = input_ids.shape
        if length > self.config.max_positions:
            raise AttnlabError(f"input_ids: length {length} is longer than max_positions ({self.config.max_positions})")
        _check_ids("input_ids", input_ids, (b, length), self.config.vocab_size, "vocab_size")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        _check_ids("token_type_ids", token_type_ids, (b, length), self.config.type_vocab_size, "type_vocab_size")
        mask = self._attention_mask(input_ids, attention_mask)
        x = self.embeddings(input_ids, token_type_ids)
        x, attentions = run_encoder(self.layers, x, mask=mask, need_weights=need_weights)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None
        return BERTOutput(last_hidden_state=x, pooler_output=pooled, attentions=attentions)

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
    ) -> BERTOutput:
        """Encode and apply the head; a loss is returned when its labels are given.

        ``mlm_labels (B, L)`` hold the original id at masked positions and -100 elsewhere;
        when given, ``mlm_logits`` is ``(M, V)``: the M labeled positions in row-major order;
        ``next_sentence_label (B,)`` is 0 for IsNext, 1 for NotNext; ``labels (B,)`` classes.
        """
        out = self.encode(input_ids, token_type_ids, attention_mask, need_weights)
        losses = []
        if self.config.head in ("pretraining", "mlm") and mlm_labels is None:
            out.mlm_logits = self.mlm_logits(out.last_hidden_state)  # (B, L, V)
        elif self.config.head in ("pretraining", "mlm"):
            # Only the labeled positions need the (large) vocabulary projection, as in
            # BERT's own pre-training code (gather_indexes): logits (M, V) of M positions.
            chosen = mlm_labels != IGNORE_INDEX  # (B, L)
            out.mlm_logits = self.mlm_logits(out.last_hidden_state[chosen])  # (M, V)
            losses.append(F.cross_entropy(out.mlm_logits, mlm_labels[chosen]))
        if self.config.head == "pretraining":
            out.nsp_logits = self.nsp(out.pooler_output)  # (B, 2)
            if next_sentence_label is not None:
                losses.append(F.cross_entropy(out.nsp_logits, next_sentence_label))
        if self.config.head == "classifier":
            out.logits = self.classifier(self.classifier_dropout(out.pooler_output))  # (B, C)
            if labels is not None:
                losses.append(F.cross_entropy(out.logits, labels))
        if losses:
            out.loss = sum(losses)
        return out

    def with_head(self, head: str, labels: list[str] | None = None) -> BERT:
        """A new BERT with this one's embeddings, encoder and pooler and a fresh ``head``
        (e.g. a classifier to fine-tune from a pre-trained checkpoint)."""
        config = dataclasses.replace(self.config, head=head, labels=list(labels or []), add_pooler=head != "mlm")
        model = BERT(config).to(self.embeddings.word.weight.device)
        missing, _ = model.load_state_dict(self.state_dict(), strict=False)
        shared = ("embeddings.", "layers.") + (("pooler.",) if self.config.add_pooler else ())
        not_copied = [k for k in missing if k.startswith(shared)]
        if not_copied:
            raise AttnlabError(f"with_head: weights {not_copied[:3]} do not fit the new config")
        return model

    # --- HuggingFace interop (attnlab.interop.hf_bert) ---
    @classmethod
    def from_hf(cls, hf_model: nn.Module) -> BERT:
        """Copy a ``transformers`` BertModel / BertForPreTraining / BertForMaskedLM /
        BertForSequenceClassification: equal outputs on the same inputs."""
        from attnlab.interop.hf_bert import from_hf

        return from_hf(hf_model)

    def _export_checkpoint(self):
        from attnlab.interop.hf_bert import to_hf_checkpoint

        return to_hf_checkpoint(self)

    @classmethod
    def _import_checkpoint(cls, config, tensors):
        from attnlab.interop.hf_bert import from_hf_checkpoint

        return from_hf_checkpoint(config, tensors)


@torch.no_grad()
def fill_mask(model: BERT, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each ``[MASK]`` in ``text``, the ``top_k`` most likely tokens and probabilities."""
    if model.config.head not in ("pretraining", "mlm"):
        raise AttnlabError(f"fill_mask: the model has a {model.config.head!r} head; it needs an MLM head")
    if top_k < 1:
        raise AttnlabError(f"top_k: expected >= 1, got {top_k}")
    ids = [tokenizer.cls_id, *tokenizer.encode(text), tokenizer.sep_id]
    positions = [i for i, t in enumerate(ids) if t == tokenizer.mask_id]
    if not positions:
        raise AttnlabError(f"text: no {tokenizer.special_tokens.mask} token in {text!r}")
    device = model.embeddings.word.weight.device
    logits = model(torch.tensor([ids], device=device)).mlm_logits[0, positions]  # (M, V)
    probs, top = logits.float().softmax(-1).topk(min(top_k, logits.shape[-1]), dim=-1)  # (M, k)
    return [
        [(tokenizer.id_to_token(int(t)), float(p)) for t, p in zip(row_ids, row_probs)]
        for row_ids, row_probs in zip(top, probs)
    ]
