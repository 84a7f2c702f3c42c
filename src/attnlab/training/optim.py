"""The default optimizer: AdamW (Loshchilov & Hutter) with weight decay only on matrices.

Decayed: parameters with 2 or more dimensions — the weights of linear, convolution and
attention projections. Not decayed:

* 1-D parameters: biases and the gains of LayerNorm / RMSNorm / BatchNorm
  (decaying a gain towards 0 fights the normalization);
* the weights of ``nn.Embedding`` (token and learned position tables: a row is only
  updated when its token is seen, but decay would shrink it every step — the choice
  of minGPT and of BERT's original optimizer);
* any parameter a module lists in ``no_weight_decay()`` (names relative to that module,
  the timm convention), e.g. ``{"cls_token", "pos_embed"}`` in a ViT.
"""

from __future__ import annotations

from torch import nn
from torch.optim import AdamW

from attnlab.training.config import TrainConfig


def no_decay_names(model: nn.Module) -> set[str]:
    """Full names of the parameters of ``model`` that get no weight decay."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        dot = f"{prefix}." if prefix else ""
        if isinstance(module, nn.Embedding):
            names.update(f"{dot}{n}" for n, _ in module.named_parameters(recurse=False))
        if callable(getattr(module, "no_weight_decay", None)):
            names.update(f"{dot}{n}" for n in module.no_weight_decay())
    names.update(n for n, p in model.named_parameters() if p.ndim < 2)
    return names


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups ``[{decayed, weight_decay}, {the rest, 0.0}]`` (empty ones left out)."""
    skip = no_decay_names(model)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if n not in skip], "weight_decay": weight_decay},
        {"params": [p for n, p in trainable if n in skip], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def default_optimizer(model: nn.Module, config: TrainConfig) -> AdamW:
    return AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas, eps=config.eps)
