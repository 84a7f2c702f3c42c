"""GPT: the decoder-only (causal) Transformer language model, in GPT-2's shape.

Radford et al. 2018 (GPT) and 2019 (GPT-2). Each position predicts the next token
from the tokens before it:

    h_0 = W_e[x_t] + W_p[t]                                   token + learned position
    h_l = h_{l-1} + MHA(LN(h_{l-1}), causal)                   pre-LN block (GPT-2)
    h_l = h_l + FFN(LN(h_l)),  FFN = W_2 gelu_tanh(W_1 h)
    p(x_{t+1} | x_<=t) = softmax(LN(h_N) W_e^T)               output tied to the input embedding

    loss = -1/T sum_t log p(x_{t+1} | x_<=t)                  (labels shifted inside, as in HF)

The block is :class:`attnlab.layers.TransformerBlock` with ``norm_first=True`` and
``causal=True``. Weights load from and save to HuggingFace GPT-2 folders
(:mod:`attnlab.interop.hf_gpt2`), GPT-2's config variants included (other activations,
``scale_attn_by_inverse_layer_idx``, ``scale_attn_weights``).

Two entry points, one function: :meth:`GPT.forward` (any length, training, attention
weights) and :meth:`GPT.decode_step`, the fast inference step for one new token per
sequence that :func:`attnlab.evaluation.sampling.generate` calls after the prompt
(:mod:`attnlab.models.gpt_decoding`; tests prove both give the same logits).

Notation: B batch, L new tokens, P cached (past) tokens, Lk = P + L keys,
D d_model, V vocab, H heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.kv_cache import KVCache, PastKV
from attnlab.attention.maps import Attentions
from attnlab.attention.masks import causal_mask
from attnlab.attention.multi_head import MultiHeadAttention
from attnlab.attention.positional import LearnedPositions
from attnlab.config import config_from_dict, config_to_dict, preset
from attnlab.errors import AttnlabError
from attnlab.evaluation.sampling import generate
from attnlab.interop.hf_gpt2 import (
    CONFIG_NAMES,
    config_from_hf,
    config_to_hf,
    weights_from_hf,
    weights_to_hf,
)
from attnlab.kernels.linear import linear
from attnlab.layers.blocks import TransformerBlock
from attnlab.layers.feed_forward import get_activation
from attnlab.models.base import IGNORE_INDEX, PretrainedModel, check_ids, check_labels
from attnlab.models.gpt_decoding import (
    DecodingCache,
    DecodingCaches,
    decode_blocks,
    greedy,
    native_step,
)


@dataclass
class GPTConfig:
    """Shape and regularization of a GPT; ``d_ff=None`` means ``4 * d_model``.

    ``activation``: the feed-forward non-linearity (GPT-2: GELU, tanh approximation).
    Scores are ``q.k * Dh^-0.5`` (``scale_attn_weights=False``: ``q.k``), divided by
    ``l + 1`` in layer ``l`` with ``scale_attn_by_inverse_layer_idx`` (HF's GPT-2 options).
    ``reorder_and_upcast_attn`` is recorded for HF folders; attnlab's scores and softmax
    are the same computation in fp32 (HF changes only its half-precision rounding).
    """

    vocab_size: int = 50257
    context_length: int = 1024
    num_layers: int = 12
    num_heads: int = 12
    d_model: int = 768
    d_ff: int | None = None
    dropout: float = 0.1
    attention_dropout: float = 0.1
    norm_eps: float = 1e-5
    eos_token_id: int | None = 50256
    activation: str = "gelu_tanh"
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "num_layers", "num_heads", "d_model"):
            if getattr(self, name) < 1:
                raise AttnlabError(f"GPTConfig.{name} = {getattr(self, name)}; expected an integer >= 1")
        if self.d_model % self.num_heads:
            raise AttnlabError(f"GPTConfig.d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        get_activation(self.activation)

    @property
    def ffn_dim(self) -> int:
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    def attention_scale(self, layer: int) -> float | None:
        """The factor of layer ``layer``'s scores; None: the default ``Dh ** -0.5``."""
        if self.scale_attn_weights and not self.scale_attn_by_inverse_layer_idx:
            return None
        scale = (self.d_model // self.num_heads) ** -0.5 if self.scale_attn_weights else 1.0
        return scale / (layer + 1) if self.scale_attn_by_inverse_layer_idx else scale


GPT_PRESETS: dict[str, GPTConfig] = {
    # the 124M-parameter GPT-2 (12 layers x 768, context 1024, BPE vocabulary of 50257)
    "gpt2-124m": GPTConfig(),
    # character-level models that train on a laptop CPU in minutes (vocab set by the tokenizer).
    # char-small (0.8M parameters) learns the most in a 10-minute CPU budget (docs/gpt.md);
    # char-base (3.3M) is the 4 x 256 shape of the speed benchmarks.
    "char-small": GPTConfig(
        vocab_size=256, context_length=256, num_layers=4, num_heads=4, d_model=128,
        dropout=0.0, attention_dropout=0.0, eos_token_id=None,
    ),
    "char-base": GPTConfig(
        vocab_size=256, context_length=256, num_layers=4, num_heads=4, d_model=256,
        dropout=0.0, attention_dropout=0.0, eos_token_id=None,
    ),
    # the tiny shape the tests use
    "tiny": GPTConfig(
        vocab_size=64, context_length=32, num_layers=2, num_heads=2, d_model=32,
        dropout=0.0, attention_dropout=0.0, eos_token_id=None,
    ),
}


def gpt_config(name: str, **overrides) -> GPTConfig:
    """A named preset with overrides: ``gpt_config("char-small", vocab_size=100)``."""
    return preset(GPT_PRESETS, name, **overrides)


@dataclass
class GPTOutput:
    """``logits (B, L, V)``; ``loss`` (scalar) with labels; ``attentions`` with
    ``need_weights=True``: ``layers.{l}.causal (B, H, L, Lk)``, every head of every layer;
    ``caches``: with ``caches`` given, the next call's (functional :class:`PastKV`: the present
    keys/values ``(B, H, P + L, Dh)``; :class:`KVCache`: the same objects, updated)."""

    logits: Tensor
    loss: Tensor | None = None
    attentions: Attentions | None = None
    last_hidden_state: Tensor | None = None
    caches: list[PastKV | KVCache] | None = None  # with caches: each layer's cache for the next call


class GPT(PretrainedModel):
    """A GPT-2-shaped causal language model.

    Call ``gpt(input_ids, attention_mask=None, labels=None)``. ``attention_mask (B, Lk)``
    is 1 for real tokens and 0 for padding (it covers cached tokens too); positions
    default to ``P .. P+L-1`` like HF's forward — pass ``position_ids (B, L)`` for left
    padding (:func:`attnlab.evaluation.sampling.generate` does). A padding query attends
    to the real tokens before it (none: a zero attention output), as HF's GPT-2 does.
    """

    config_class = GPTConfig
    model_type = "gpt2"

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.token_embedding = nn.Embedding(config.vocab_size, d)
        self.positions = LearnedPositions(config.context_length, d)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d, config.num_heads, config.ffn_dim, dropout=config.dropout,
                attention_dropout=config.attention_dropout, activation=config.activation,
                norm_first=True, norm_eps=config.norm_eps,
                attention=MultiHeadAttention(
                    d, config.num_heads, dropout=config.attention_dropout, scale=config.attention_scale(i)
                ),
            )
            for i in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(d, eps=config.norm_eps)
        self._decoding = DecodingCache()  # weights gathered for decode_step, see gpt_decoding
        self.apply(_init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by 1/sqrt(2N)
            if name.endswith(("out_proj.weight", "linear2.weight")):
                nn.init.normal_(p, std=0.02 / (2 * config.num_layers) ** 0.5)

    @property
    def lm_head_weight(self) -> Tensor:
        """The output projection ``(V, D)``: the token embedding, tied."""
        return self.token_embedding.weight

    def make_caches(self, capacity: int = 64) -> DecodingCaches:
        """One preallocated growing KV cache per layer (a list, with the decoding choice
        of its sequence; ``reset()`` starts a new sequence)."""
        return DecodingCaches(KVCache(capacity=capacity) for _ in self.blocks)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        labels: Tensor | None = None,
        position_ids: Tensor | None = None,
        caches: list[KVCache | PastKV] | None = None,
        need_weights: bool = False,
        last_only: bool = False,
    ) -> GPTOutput:
        """Logits of every position (or of the last only: ``last_only``; without weights or
        caches the last block then computes that position alone), appending the new
        keys/values to ``caches`` when given (a :class:`KVCache` per layer, kept in place, or
        the functional :class:`PastKV`: the output's ``caches`` hold the present ones);
        ``labels (B, L)`` give the loss."""
        check_ids(input_ids, "input_ids", self.config.vocab_size)
        b, length = input_ids.shape
        past = caches[0].length if caches else 0
        position_ids = self._positions(position_ids, b, length, past, input_ids.device)
        h = self.dropout(self.token_embedding(input_ids) + self.positions(position_ids))  # (B, L, D)
        mask, causal = self._attention_mask(attention_mask, b, length, past, input_ids.device)
        weights, after = [], []
        # only the last position is read: the last block computes it alone (its keys are every position)
        short = last_only and not need_weights and not caches
        for i, block in enumerate(self.blocks):
            if short and i == len(self.blocks) - 1:
                h = block.forward_queries(h, slice(-1, None), mask=None if mask is None else mask[:, :, -1:])  # (B, 1, D)
                break
            out = block(h, mask=mask, causal=causal, need_weights=need_weights, cache=caches[i] if caches else None)
            h = out.hidden
            if need_weights:
                weights.append(out.self_weights)
            if caches:
                after.append(caches[i].advance(out.present))
        if last_only:
            h = h[:, -1:]  # (B, 1, D)
        h = self.final_norm(h)
        # rows (B*L, D): a 2-D product, which an ONNX export writes as one Gemm reading the tied
        # table in its stored layout (the lookup's), not a second, transposed copy of it
        logits = linear(h.flatten(0, 1), self.lm_head_weight).view(*h.shape[:2], -1)  # (B, L, V)
        loss = None if labels is None else causal_lm_loss(logits, labels)
        attentions = Attentions().add_layers("layers.{i}.causal", weights, kind="causal", axes=("tokens", "tokens")) \
            if need_weights else None
        return GPTOutput(logits=logits, loss=loss, attentions=attentions, last_hidden_state=h, caches=after or None)

    @torch.no_grad()
    def decode_step(
        self, input_ids: Tensor, caches: list[KVCache], attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> GPTOutput:
        """The next-token logits ``(B, 1, V)`` of one new token per sequence, ``input_ids
        (B, 1)``, after the ``P`` tokens in ``caches`` (filled by :meth:`forward`): the same
        function as ``forward(input_ids, attention_mask, position_ids=position_ids,
        caches=caches)`` in inference (no dropout, no gradients), made fast
        (:mod:`attnlab.models.gpt_decoding`): the C step for unpadded fp32 CPU rows (every
        row at the same position), else direct functional calls on weights gathered once. ``attention_mask (B, P + 1)``."""
        stored = caches.stored() if isinstance(caches, DecodingCaches) else caches  # a beam reorder may be pending
        if not stored or len(stored) != len(self.blocks) or not stored[0].is_filled:
            raise AttnlabError(
                "decode_step: caches must hold the sequence so far (one per layer, filled by "
                "forward(prompt, caches=caches)); use forward for the prompt"
            )
        past, batch = stored[0].length, stored[0].key.shape[0]
        check_ids(input_ids, "input_ids", self.config.vocab_size, shape=(batch, 1))
        choice = self._decoding.for_sequence(self, caches)
        if choice.native is not None and attention_mask is None and position_ids is None \
                and not torch.is_autocast_enabled("cpu"):
            self.positions.check(past)
            logits, h = native_step(choice.native, input_ids.view(-1), caches)  # (B, V), (B, D)
            return GPTOutput(logits=logits.view(batch, 1, -1), last_hidden_state=h.view(batch, 1, -1))
        if position_ids is None:
            self.positions.check(past)
            position = self.positions.embedding.weight[past]  # (D,): one read, no index tensor
        else:
            position = self.positions(self._positions(position_ids, batch, 1, past, input_ids.device))  # (B, 1, D)
        h = F.embedding(input_ids, self.token_embedding.weight) + position  # (B, 1, D)
        mask, _ = self._attention_mask(attention_mask, batch, 1, past, input_ids.device)
        h = decode_blocks(h.view(batch, -1), mask, caches, choice.layers, self.config.num_heads, self.config.norm_eps,
                          self.blocks[0].ffn.activation)
        norm = self.final_norm
        h = F.layer_norm(h, norm.normalized_shape, norm.weight, norm.bias, norm.eps).view(batch, 1, -1)  # (B, 1, D)
        return GPTOutput(logits=F.linear(h, self.lm_head_weight), last_hidden_state=h)  # (B, 1, V)

    def generate(self, input_ids: Tensor, max_new_tokens: int, **kwargs) -> Tensor:
        """Greedy or sampled continuation, ``(B, L + new)``; see :func:`attnlab.evaluation.sampling.generate`
        (greedy and unpadded on the C step: the loop in C, :func:`attnlab.models.gpt_decoding.greedy`)."""
        kwargs.setdefault("eos_token_id", None)
        fast = greedy(self, input_ids, max_new_tokens, **kwargs)
        return fast if fast is not None else generate(self, input_ids, max_new_tokens, **kwargs)

    # --- HuggingFace GPT-2: models and checkpoint folders ---
    @classmethod
    def from_hf(cls, hf_model: nn.Module) -> GPT:
        """Copy a ``transformers.GPT2LMHeadModel`` (or ``GPT2Model``): equal logits."""
        return cls._copy_hf(hf_model)

    def _export_checkpoint(self) -> tuple[dict, dict[str, Tensor]]:
        return config_to_hf(config_to_dict(self.config)), weights_to_hf(self.state_dict(), self.config.num_layers)

    @classmethod
    def _import_checkpoint(cls, config: dict, tensors: dict[str, Tensor]) -> GPT:
        if config.get("model_type", "gpt2") != "gpt2":
            raise AttnlabError(f"checkpoint holds a {config.get('model_type')!r} model, not a GPT-2 ('gpt2')")
        model = cls(config_from_dict(GPTConfig, config_from_hf(config), CONFIG_NAMES))
        return model._load_weights(weights_from_hf(tensors, model.config.num_layers), "GPT-2 checkpoint")

    def _positions(self, position_ids: Tensor | None, b: int, length: int, past: int, device: torch.device) -> Tensor:
        """``position_ids`` checked (``(B, L)`` or ``(L,)``, >= 0), or ``P .. P+L-1``."""
        if position_ids is None:
            return torch.arange(past, past + length, device=device)  # (L,)
        if position_ids.shape not in ((b, length), (length,)) or position_ids.is_floating_point():
            raise AttnlabError(
                f"position_ids must be an integer tensor of shape (B, L) = ({b}, {length}) or (L,), "
                f"got {position_ids.dtype} {tuple(position_ids.shape)}"
            )
        if position_ids.numel() and not torch.compiler.is_compiling() and int(position_ids.min()) < 0:
            raise AttnlabError(f"position_ids must be >= 0, got {int(position_ids.min())}")
        return position_ids

    def _attention_mask(
        self, attention_mask: Tensor | None, b: int, length: int, past: int, device: torch.device
    ) -> tuple[Tensor | None, bool]:
        """The (mask, causal) pair the blocks get; a padding mask becomes one bool mask.

        Without padding the blocks run PyTorch's causal kernel (a single new token with a
        cache sees every key, so it needs no mask at all). With padding, query i may see
        the real keys up to its own position; a query with none (left padding) gets zero
        weights and a zero attention output — what HF's GPT-2 computes (its default SDPA
        attention).
        """
        total = past + length
        if attention_mask is None:
            return None, length > 1
        if attention_mask.shape != (b, total):
            raise AttnlabError(
                f"attention_mask must have shape (B, P + L) = ({b}, {total}) (P cached tokens), "
                f"got {tuple(attention_mask.shape)}"
            )
        keys = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, Lk)
        return keys & causal_mask(length, total, device=device), False  # (B, 1, L, Lk)


def causal_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean next-token cross-entropy: position t predicts ``labels[:, t + 1]`` (fp32)."""
    check_labels(labels, "labels", tuple(logits.shape[:2]), logits.shape[-1])
    # the labels move left (the last position gets none), so the logits need no slice: no copy
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)  # (B, L)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX)


def _init_weights(module: nn.Module) -> None:
    """GPT-2's initialization: N(0, 0.02) weights, zero biases, unit LayerNorm gains."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
