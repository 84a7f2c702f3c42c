"""GPT: the decoder-only (causal) Transformer language model, in GPT-2's shape.

Radford et al. 2018 (GPT) and 2019 (GPT-2). Each position predicts the next token
from the tokens before it:

    h_0 = W_e[x_t] + W_p[t]                                   token + learned position
    h_l = h_{l-1} + MHA(LN(h_{l-1}), causal)                   pre-LN block (GPT-2)
    h_l = h_l + FFN(LN(h_l)),  FFN = W_2 gelu_tanh(W_1 h)
    p(x_{t+1} | x_<=t) = softmax(LN(h_N) W_e^T)               output tied to the input embedding

    loss = -1/T sum_t log p(x_{t+1} | x_<=t)                  (labels shifted inside, as in HF)

The block is :class:`attnlab.layers.EncoderBlock` with ``norm_first=True`` and
``causal=True``. Weights load from and save to HuggingFace GPT-2 folders
(:mod:`attnlab.interop.hf_gpt2`); generation lives in :mod:`attnlab.generation`.

Notation: B batch, L new tokens, P cached (past) tokens, Lk = P + L keys,
D d_model, V vocab, H heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.kv_cache import KVCache
from attnlab.attention.masks import causal_mask
from attnlab.attention.positional import LearnedPositions
from attnlab.config import config_to_dict, preset
from attnlab.errors import AttnlabError
from attnlab.generation import generate
from attnlab.interop.hf_gpt2 import config_from_hf, config_to_hf, weights_from_hf, weights_to_hf
from attnlab.layers.blocks import EncoderBlock
from attnlab.kernels.linear import linear
from attnlab.models.base import PretrainedModel
from attnlab.models.gpt_decoding import DecodingCache, decode_blocks

IGNORE_INDEX = -100  # labels with this value add nothing to the loss (the HF/PyTorch convention)


@dataclass
class GPTConfig:
    """Shape and regularization of a GPT; ``d_ff=None`` means ``4 * d_model``."""

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

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "num_layers", "num_heads", "d_model"):
            if getattr(self, name) < 1:
                raise AttnlabError(f"GPTConfig.{name} = {getattr(self, name)}; expected an integer >= 1")
        if self.d_model % self.num_heads:
            raise AttnlabError(f"GPTConfig.d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")

    @property
    def ffn_dim(self) -> int:
        return 4 * self.d_model if self.d_ff is None else self.d_ff


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
    """``logits (B, L, V)``; ``loss`` (scalar) with labels; ``attentions``: per layer ``(B, H, L, Lk)``."""

    logits: Tensor
    loss: Tensor | None = None
    attentions: list[Tensor] | None = None
    last_hidden_state: Tensor | None = None


class GPT(PretrainedModel):
    """A GPT-2-shaped causal language model.

    Call ``gpt(input_ids, attention_mask=None, labels=None)``. ``attention_mask (B, Lk)``
    is 1 for real tokens and 0 for padding (it covers cached tokens too); positions
    default to ``P .. P+L-1`` like HF's forward — pass ``position_ids (B, L)`` for left
    padding (:func:`attnlab.generation.generate` does).
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
            EncoderBlock(
                d, config.num_heads, config.ffn_dim, dropout=config.dropout,
                attention_dropout=config.attention_dropout, activation="gelu_tanh",
                norm_first=True, norm_eps=config.norm_eps,
            )
            for _ in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(d, eps=config.norm_eps)
        self._decoding = DecodingCache()  # weights gathered for decoding, see gpt_decoding
        self.apply(_init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by 1/sqrt(2N)
            if name.endswith(("out_proj.weight", "linear2.weight")):
                nn.init.normal_(p, std=0.02 / (2 * config.num_layers) ** 0.5)

    @property
    def lm_head_weight(self) -> Tensor:
        """The output projection ``(V, D)``: the token embedding, tied."""
        return self.token_embedding.weight

    def make_caches(self, capacity: int = 64) -> list[KVCache]:
        """One preallocated growing KV cache per layer."""
        return [KVCache(capacity=capacity) for _ in self.blocks]

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        *,
        labels: Tensor | None = None,
        position_ids: Tensor | None = None,
        caches: list[KVCache] | None = None,
        output_attentions: bool = False,
        last_only: bool = False,
    ) -> GPTOutput:
        """Logits of every position (or of the last only, for decoding)."""
        self._check_ids(input_ids, "input_ids")
        b, length = input_ids.shape
        past = caches[0].length if caches else 0
        if caches and length == 1 and labels is None and not (self.training or output_attentions or torch.is_grad_enabled()):
            return self._decode_next(input_ids, attention_mask, position_ids, caches, past)
        if position_ids is None:
            position_ids = torch.arange(past, past + length, device=input_ids.device)  # (L,)
        h = self.dropout(self.token_embedding(input_ids) + self.positions(position_ids))  # (B, L, D)
        mask, causal = self._attention_mask(attention_mask, b, length, past, input_ids.device)
        attentions = [] if output_attentions else None
        for i, block in enumerate(self.blocks):
            out = block(h, mask=mask, causal=causal, need_weights=output_attentions, cache=caches[i] if caches else None)
            h = out.hidden
            if attentions is not None:
                attentions.append(out.self_weights)
        if last_only:
            h = h[:, -1:]  # (B, 1, D)
        h = self.final_norm(h)
        logits = linear(h, self.lm_head_weight)  # (B, L, V)
        loss = None if labels is None else causal_lm_loss(logits, labels)
        return GPTOutput(logits=logits, loss=loss, attentions=attentions, last_hidden_state=h)

    def _decode_next(
        self, input_ids: Tensor, attention_mask: Tensor | None, position_ids: Tensor | None,
        caches: list[KVCache], past: int,
    ) -> GPTOutput:
        """The fast path of decoding, one new token per sequence ``input_ids (B, 1)`` in
        inference (:mod:`attnlab.models.gpt_decoding`): the C step for one unpadded fp32
        CPU sequence, else the forward above as direct functional calls (no module
        dispatch, no dropout, the position of an unpadded batch read as a Python int)."""
        b = input_ids.shape[0]
        choice = self._decoding.for_sequence(self, caches)
        if choice.native is not None and attention_mask is None and position_ids is None \
                and not torch.is_autocast_enabled("cpu"):
            self.positions.check(past)
            logits, h = choice.native.step(int(input_ids), caches)  # (V,), (D,)
            return GPTOutput(logits=logits.view(1, 1, -1), last_hidden_state=h.view(1, 1, -1))
        if position_ids is None:
            self.positions.check(past)
            position = self.positions.embedding.weight[past]  # (D,)
        else:
            position = self.positions(position_ids)  # (B, 1, D), checked
        h = F.embedding(input_ids, self.token_embedding.weight) + position  # (B, 1, D)
        mask, _ = self._attention_mask(attention_mask, b, 1, past, input_ids.device)
        activation = self.blocks[0].ffn.activation
        h = decode_blocks(h.view(b, -1), mask, caches, choice.layers, self.config.num_heads, self.config.norm_eps, activation)
        norm = self.final_norm
        h = F.layer_norm(h, norm.normalized_shape, norm.weight, norm.bias, norm.eps).view(b, 1, -1)  # (B, 1, D)
        return GPTOutput(logits=F.linear(h, self.lm_head_weight), last_hidden_state=h)  # (B, 1, V)

    def generate(self, input_ids: Tensor, max_new_tokens: int, **kwargs) -> Tensor:
        """Greedy or sampled continuation, ``(B, L + new)``; see :func:`attnlab.generation.generate`."""
        kwargs.setdefault("eos_token_id", None)
        return generate(self, input_ids, max_new_tokens, **kwargs)

    # --- HuggingFace GPT-2: models and checkpoint folders ---
    @classmethod
    def from_hf(cls, hf_model: nn.Module) -> GPT:
        """Copy a ``transformers.GPT2LMHeadModel`` (or ``GPT2Model``): equal logits."""
        model = cls._import_checkpoint(hf_model.config.to_dict(), dict(hf_model.state_dict()))
        weight = hf_model.get_input_embeddings().weight
        return model.to(device=weight.device, dtype=weight.dtype).train(hf_model.training)

    def _export_checkpoint(self) -> tuple[dict, dict[str, Tensor]]:
        return config_to_hf(config_to_dict(self.config)), weights_to_hf(self.state_dict(), self.config.num_layers)

    @classmethod
    def _import_checkpoint(cls, config: dict, tensors: dict[str, Tensor]) -> GPT:
        if config.get("model_type", "gpt2") != "gpt2":
            raise AttnlabError(f"checkpoint holds a {config.get('model_type')!r} model, not a GPT-2 ('gpt2')")
        model = cls(GPTConfig(**config_from_hf(config)))
        weights = weights_from_hf(tensors, model.config.num_layers)
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise AttnlabError(f"GPT-2 weights do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model

    def _check_ids(self, ids: Tensor, name: str) -> None:
        if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise AttnlabError(f"{name} must be an integer tensor of shape (B, L), got {ids.dtype} {tuple(ids.shape)}")
        if torch.compiler.is_compiling():  # reading values would split the graph (the embedding still fails)
            return
        if ids.numel() == 1:  # a decoding step: one read
            low = high = int(ids)
        else:
            low, high = ids.aminmax() if ids.numel() else (0, 0)  # one pass, one sync
        if int(low) < 0 or int(high) >= self.config.vocab_size:
            raise AttnlabError(
                f"{name} holds token ids in [{int(low)}, {int(high)}]; expected ids in "
                f"[0, {self.config.vocab_size - 1}] (the model's vocab_size is {self.config.vocab_size})"
            )

    def _attention_mask(
        self, attention_mask: Tensor | None, b: int, length: int, past: int, device: torch.device
    ) -> tuple[Tensor | None, bool]:
        """The (mask, causal) pair the blocks get; a padding mask becomes one bool mask.

        Without padding the blocks run PyTorch's causal kernel (a single new token with a
        cache sees every key, so it needs no mask at all).
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
        allowed = keys & causal_mask(length, total, device=device)  # (B, 1, L, Lk)
        # A padding query would see no key at all; let it see itself so no row is empty.
        return allowed | _diagonal(length, total, device), False


def _diagonal(length: int, total: int, device: torch.device) -> Tensor:
    """``(L, Lk)`` True where query i meets its own key ``P + i`` (bottom-right aligned)."""
    return torch.ones(length, total, dtype=torch.bool, device=device).tril(total - length).triu(total - length)


def causal_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean next-token cross-entropy: position t predicts ``labels[:, t + 1]`` (fp32)."""
    if labels.shape != logits.shape[:2]:
        raise AttnlabError(f"labels must have shape (B, L) = {tuple(logits.shape[:2])}, got {tuple(labels.shape)}")
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
