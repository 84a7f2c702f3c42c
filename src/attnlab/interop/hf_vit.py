"""ViT <-> HuggingFace ``transformers``: the same weights under HF's names and config.

:meth:`ViT.save_pretrained` writes a HuggingFace folder (``model_type: vit``, tensor
names as ``transformers`` saves them), so ``ViTForImageClassification.from_pretrained``
reads it, and ``ViT.from_pretrained`` reads folders ``transformers`` wrote. Recent
``transformers`` versions name ViT's modules differently in memory
(``layers.0.attention.q_proj``) than on disk (``encoder.layer.0.attention.attention.query``);
:data:`MEMORY_ALIASES` maps the former to the latter before the shared rules apply.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from attnlab.interop.hf_bert import (
    copy_from_hf,
    encoder_config_from_hf,
    encoder_config_to_hf,
    load_renamed,
    rename,
    rename_one,
)

# (attnlab name, HuggingFace name) prefixes; ``{i}`` stands for a layer index.
VIT_RULES = [
    ("embeddings.patch.", "embeddings.patch_embeddings.projection."),
    ("embeddings.positions", "embeddings.position_embeddings"),
    ("embeddings.cls_token", "embeddings.cls_token"),
    ("layers.{i}.self_attn.q_proj.", "encoder.layer.{i}.attention.attention.query."),
    ("layers.{i}.self_attn.k_proj.", "encoder.layer.{i}.attention.attention.key."),
    ("layers.{i}.self_attn.v_proj.", "encoder.layer.{i}.attention.attention.value."),
    ("layers.{i}.self_attn.out_proj.", "encoder.layer.{i}.attention.output.dense."),
    ("layers.{i}.attn_residual.norm.", "encoder.layer.{i}.layernorm_before."),
    ("layers.{i}.ffn.linear1.", "encoder.layer.{i}.intermediate.dense."),
    ("layers.{i}.ffn.linear2.", "encoder.layer.{i}.output.dense."),
    ("layers.{i}.ffn_residual.norm.", "encoder.layer.{i}.layernorm_after."),
    ("norm.", "layernorm."),
    ("pooler.", "pooler.dense."),
]
# (on-disk name, in-memory name of transformers >= 5) prefixes.
MEMORY_ALIASES = [
    ("encoder.layer.{i}.attention.attention.query.", "layers.{i}.attention.q_proj."),
    ("encoder.layer.{i}.attention.attention.key.", "layers.{i}.attention.k_proj."),
    ("encoder.layer.{i}.attention.attention.value.", "layers.{i}.attention.v_proj."),
    ("encoder.layer.{i}.attention.output.dense.", "layers.{i}.attention.o_proj."),
    ("encoder.layer.{i}.intermediate.dense.", "layers.{i}.mlp.fc1."),
    ("encoder.layer.{i}.output.dense.", "layers.{i}.mlp.fc2."),
    ("encoder.layer.{i}.", "layers.{i}."),  # layernorm_before / layernorm_after
]
ARCHITECTURES = {False: "ViTModel", True: "ViTForImageClassification"}


def config_to_hf(config) -> dict[str, Any]:
    return {
        **encoder_config_to_hf(config, "vit", ARCHITECTURES[bool(config.labels)]),
        "image_size": config.image_size,
        "patch_size": config.patch_size,
        "num_channels": config.num_channels,
        "qkv_bias": config.qkv_bias,
    }


def config_from_hf(hf: dict[str, Any], has_pooler: bool):
    from attnlab.models.vit import ViTConfig

    fields = encoder_config_from_hf(hf, "vit", list(ARCHITECTURES.values()), dropout=0.0)
    if fields.pop("architecture") != ARCHITECTURES[True]:
        fields["labels"] = []
    return ViTConfig(
        **fields, image_size=hf["image_size"], patch_size=hf["patch_size"], num_channels=hf.get("num_channels", 3),
        qkv_bias=hf.get("qkv_bias", True), add_pooler=has_pooler,
    )


def to_hf_checkpoint(model) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config.json dict, tensors under HF's on-disk names)`` of an attnlab ViT."""
    prefix = "vit." if model.config.labels else ""
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("classifier."):
            tensors[name] = tensor
        else:
            tensors[prefix + rename_one(name, VIT_RULES)] = tensor
    return config_to_hf(model.config), tensors


def from_hf_checkpoint(hf_config: dict[str, Any], tensors: dict[str, torch.Tensor]):
    """An attnlab ViT from a HuggingFace ``config.json`` dict and its tensors (either naming)."""
    from attnlab.models.vit import ViT

    tensors = rename({k.removeprefix("vit."): v for k, v in tensors.items()}, MEMORY_ALIASES, reverse=True)
    config = config_from_hf(hf_config, has_pooler="pooler.dense.weight" in tensors)
    return load_renamed(ViT(config), rename(tensors, VIT_RULES, reverse=True), "ViT checkpoint")


def from_hf(hf_model: nn.Module):
    """An attnlab ViT holding a copy of a ``transformers`` ViT model's weights."""
    return copy_from_hf(hf_model, from_hf_checkpoint)
