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

from attnlab.errors import AttnlabError
from attnlab.interop.hf_bert import (
    ACTIVATIONS,
    HF_ACTIVATIONS,
    copy_from_hf,
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
    hf = {
        "model_type": "vit",
        "architectures": [ARCHITECTURES[bool(config.labels)]],
        "image_size": config.image_size,
        "patch_size": config.patch_size,
        "num_channels": config.num_channels,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": ACTIVATIONS[config.activation],
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "layer_norm_eps": config.norm_eps,
        "qkv_bias": config.qkv_bias,
        "initializer_range": 0.02,
    }
    if config.labels:
        hf["id2label"] = {str(i): name for i, name in enumerate(config.labels)}
        hf["label2id"] = {name: i for i, name in enumerate(config.labels)}
    return hf


def config_from_hf(hf: dict[str, Any], has_pooler: bool):
    from attnlab.models.vit import ViTConfig

    if hf.get("model_type", "vit") != "vit":
        raise AttnlabError(f"config.json holds a {hf.get('model_type')!r} model, not 'vit'")
    if hf.get("hidden_act", "gelu") not in HF_ACTIVATIONS:
        raise AttnlabError(f"hidden_act {hf['hidden_act']!r}: expected one of {sorted(HF_ACTIVATIONS)}")
    architecture = (hf.get("architectures") or ["ViTModel"])[0]
    if architecture not in ARCHITECTURES.values():
        raise AttnlabError(f"architecture {architecture!r}: expected one of {sorted(ARCHITECTURES.values())}")
    id2label = hf.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)] if architecture == ARCHITECTURES[True] else []
    return ViTConfig(
        image_size=hf["image_size"], patch_size=hf["patch_size"], num_channels=hf.get("num_channels", 3),
        hidden_size=hf["hidden_size"], num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"], activation=HF_ACTIVATIONS[hf.get("hidden_act", "gelu")],
        dropout=hf.get("hidden_dropout_prob", 0.0), attention_dropout=hf.get("attention_probs_dropout_prob", 0.0),
        norm_eps=hf.get("layer_norm_eps", 1e-12), qkv_bias=hf.get("qkv_bias", True),
        add_pooler=has_pooler, labels=labels,
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
