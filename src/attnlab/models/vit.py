"""ViT (Dosovitskiy et al. 2021): a Transformer encoder over image patches.

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos        patches by a P x P stride-P conv
    z_l = TransformerBlock_l(z_{l-1})                      pre-LN, GELU
    y   = LN(z_L)                                          last_hidden_state
    logits = W_c y[:, 0] + b_c                             classifier on the class token

With an image of another size than ``config.image_size`` the patch position table is
resized by bicubic interpolation (as DINO and HuggingFace's ``interpolate_pos_encoding``),
the class token's position kept. Checkpoints are HuggingFace folders
(:mod:`attnlab.interop.hf_vit`).

Notation: B batch, C channels, Hi x Wi image size, P patch size, h x w = floor(Hi/P) x
floor(Wi/P) patch grid (the stride-P conv leaves the last Hi mod P rows and Wi mod P
columns out, as HuggingFace's does), N = h w patches, D hidden_size, K labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.maps import Attentions
from attnlab.config import config_from_dict, config_to_dict, preset
from attnlab.errors import AttnlabError
from attnlab.interop import hf_vit
from attnlab.kernels.linear import Linear
from attnlab.layers.blocks import EncoderConfig, encoder_stack, run_encoder
from attnlab.models.base import PretrainedModel, check_labels


@dataclass
class ViTConfig(EncoderConfig):
    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    dropout: float = 0.0
    attention_dropout: float = 0.0
    qkv_bias: bool = True
    add_pooler: bool = False  # tanh(W y[:, 0]): HF's ViTModel pooler
    # labels (from EncoderConfig): class names; empty = no classifier

    def __post_init__(self) -> None:
        self.check_sizes("image_size", "patch_size", "num_channels")
        if self.patch_size > self.image_size:  # not a multiple is legal: HF's conv leaves the rest out
            raise AttnlabError(
                f"ViTConfig.patch_size ({self.patch_size}) must not exceed image_size ({self.image_size})"
            )

    @property
    def grid(self) -> int:
        """Patches per side at ``image_size``."""
        return self.image_size // self.patch_size


PRESETS = {
    "base": ViTConfig(),  # ViT-B/16: 86M parameters
    "digits": ViTConfig(  # 8x8 grey digits, 2x2 patches: 16 patches + the class token
        image_size=8, patch_size=2, num_channels=1, hidden_size=64, num_layers=4, num_heads=4,
        intermediate_size=128, dropout=0.1, labels=[str(d) for d in range(10)],
    ),
}


def vit_config(name: str, **overrides) -> ViTConfig:
    """A named preset (``"base"``, ``"digits"``) with fields overridden."""
    return preset(PRESETS, name, **overrides)


@dataclass
class ViTOutput:
    """``last_hidden_state (B, 1 + N, D)`` after the final LayerNorm; ``pooler_output (B, D)``;
    ``logits (B, K)``; ``attentions`` with ``need_weights=True``: ``layers.{l}.self
    (B, H, 1 + N, 1 + N)``, axes ("patches", "patches"), the class token first."""

    last_hidden_state: Tensor
    pooler_output: Tensor | None = None
    logits: Tensor | None = None
    attentions: Attentions | None = None
    loss: Tensor | None = None


class PatchEmbeddings(nn.Module):
    """Patches, class token and positions: ``(B, C, Hi, Wi) -> (B, 1 + N, D)``."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        d = config.hidden_size
        self.patch_size, self.grid = config.patch_size, config.grid
        self.patch = nn.Conv2d(config.num_channels, d, kernel_size=config.patch_size, stride=config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.positions = nn.Parameter(torch.zeros(1, 1 + config.grid**2, d))
        self.dropout = nn.Dropout(config.dropout)

    def position_table(self, h: int, w: int) -> Tensor:
        """Positions for an h x w patch grid ``(1, 1 + h w, D)``, bicubic-resized if needed."""
        if (h, w) == (self.grid, self.grid):
            return self.positions
        d = self.positions.shape[-1]
        table = self.positions[:, 1:].reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)  # (1, D, g, g)
        table = F.interpolate(table, size=(h, w), mode="bicubic", align_corners=False)  # (1, D, h, w)
        return torch.cat([self.positions[:, :1], table.permute(0, 2, 3, 1).reshape(1, h * w, d)], dim=1)

    def forward(self, pixel_values: Tensor) -> Tensor:
        b, _, height, width = pixel_values.shape
        x = self.patch(pixel_values)  # (B, D, h, w)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)  # (B, 1 + N, D)
        return self.dropout(x + self.position_table(h, w))


class ViT(PretrainedModel):
    """Vision Transformer with an optional pooler and classifier; see the module docstring."""

    config_class = ViTConfig
    model_type = "vit"

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.embeddings = PatchEmbeddings(config)
        self.layers = encoder_stack(config, norm_first=True)
        if not config.qkv_bias:
            for block in self.layers:
                for proj in (block.self_attn.q_proj, block.self_attn.k_proj, block.self_attn.v_proj):
                    proj.bias = None
        self.norm = nn.LayerNorm(d, eps=config.norm_eps)
        self.pooler = Linear(d, d) if config.add_pooler else None
        self.classifier = Linear(d, config.num_labels) if config.labels else None
        self.apply(self._init_weights)
        nn.init.trunc_normal_(self.embeddings.positions, std=0.02)
        nn.init.trunc_normal_(self.embeddings.cls_token, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """Truncated N(0, 0.02) weights and zero biases (as HuggingFace initializes ViT)."""
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def _check_pixels(self, pixel_values: Tensor) -> None:
        c, p = self.config.num_channels, self.config.patch_size
        if pixel_values.dim() != 4 or pixel_values.shape[1] != c:
            raise AttnlabError(f"pixel_values must have shape (B, {c}, H, W), got {tuple(pixel_values.shape)}")
        if pixel_values.shape[0] == 0 or pixel_values.shape[2] == 0 or pixel_values.shape[3] == 0:
            raise AttnlabError(f"pixel_values is empty {tuple(pixel_values.shape)}: expected at least one image")
        if not pixel_values.is_floating_point():
            raise AttnlabError(f"pixel_values must be floating point, got {pixel_values.dtype}")
        height, width = pixel_values.shape[-2:]
        if height < p or width < p:
            raise AttnlabError(f"pixel_values: image size {height}x{width} is smaller than one patch ({p}x{p})")

    def forward(self, pixel_values: Tensor, *, need_weights: bool = False, labels: Tensor | None = None) -> ViTOutput:
        """``pixel_values (B, C, Hi, Wi)``, Hi and Wi at least the patch size; ``labels (B,)``."""
        self._check_pixels(pixel_values)
        x = self.embeddings(pixel_values.to(self.embeddings.patch.weight.dtype))
        x, weights = run_encoder(self.layers, x, need_weights=need_weights)
        x = self.norm(x)
        attentions = Attentions().add_layers("layers.{i}.self", weights, kind="self", axes=("patches", "patches")) \
            if need_weights else None
        out = ViTOutput(last_hidden_state=x, attentions=attentions)
        if self.pooler is not None:
            out.pooler_output = torch.tanh(self.pooler(x[:, 0]))
        if self.classifier is not None:
            out.logits = self.classifier(x[:, 0])  # (B, K)
            if labels is not None:
                check_labels(labels, "labels", (pixel_values.shape[0],), self.config.num_labels)
                out.loss = F.cross_entropy(out.logits, labels)
        return out

    def class_logits(self, pixel_values: Tensor) -> Tensor:
        """``forward(pixel_values).logits (B, K)`` for less work: the last block runs for the
        class token alone (its query still attends to every patch), which is all the
        classifier reads. The training loss of ``attnlab train vit`` uses it."""
        if self.classifier is None:
            raise AttnlabError("class_logits: this ViT has no classifier head (config.labels is empty)")
        self._check_pixels(pixel_values)
        x = self.embeddings(pixel_values.to(self.embeddings.patch.weight.dtype))
        x, _ = run_encoder(self.layers[:-1], x)
        cls = self.layers[-1].forward_first(x, 1)  # (B, 1, D)
        return self.classifier(self.norm(cls[:, 0]))

    # --- HuggingFace interop (attnlab.interop.hf_vit: dicts in, dicts out) ---
    @classmethod
    def from_hf(cls, hf_model: nn.Module) -> ViT:
        """Copy a ``transformers`` ViTModel / ViTForImageClassification: equal outputs."""
        return cls._copy_hf(hf_model)

    def _export_checkpoint(self) -> tuple[dict, dict[str, Tensor]]:
        config = hf_vit.config_to_hf(config_to_dict(self.config))
        return config, hf_vit.weights_to_hf(self.state_dict(), classifier=bool(self.config.labels))

    @classmethod
    def _import_checkpoint(cls, config: dict, tensors: dict[str, Tensor]) -> ViT:
        fields = hf_vit.config_from_hf(config, hf_vit.has_pooler(tensors))
        model = cls(config_from_dict(ViTConfig, fields, hf_vit.ENCODER_NAMES))
        return model._load_weights(hf_vit.weights_from_hf(tensors), "ViT checkpoint")
