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

The update runs in PyTorch's fused AdamW kernel wherever it applies (every parameter a
plain floating-point tensor on the CPU or a GPU; not sharded ``DTensor``s): one pass per
tensor over parameter, gradient and both moments, where the default CPU implementation
makes ~8 passes (``lerp_``, ``mul_``, ``addcmul_``, ``sqrt``, ``div``, ``add_``,
``addcdiv_``, ...). The same update rule, the same state dict (a checkpoint written with
either loads into the other); fp32 rounding order differs, within fp32 accuracy of the
fp64 rule (tests/training/test_optim.py). The gain per update is in
``docs/benchmarks.md`` ("Where the time goes").
"""

from __future__ import annotations

import torch
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


def fused_applies(params) -> bool:
    """True when PyTorch's fused AdamW takes every parameter: plain floating-point tensors
    (not tensor subclasses such as FSDP's ``DTensor``) on the CPU or one CUDA device type."""
    params = list(params)
    return bool(params) and all(
        type(p.data) is torch.Tensor and p.is_floating_point() and p.device.type in ("cpu", "cuda")
        and p.device.type == params[0].device.type for p in params
    )


def adamw(params, **options) -> AdamW:
    """``torch.optim.AdamW(params, **options)``, fused where :func:`fused_applies`;
    ``params``: parameters or a list of parameter groups (dicts with ``"params"``)."""
    params = list(params)
    flat = [p for g in params for p in g["params"]] if params and isinstance(params[0], dict) else params
    return AdamW(params, fused=True if fused_applies(flat) else None, **options)


def default_optimizer(model: nn.Module, config: TrainConfig) -> AdamW:
    return adamw(param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas, eps=config.eps)
