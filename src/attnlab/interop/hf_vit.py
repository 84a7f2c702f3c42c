"""ViT <-> HuggingFace ``transformers``: config fields and tensor names, both ways.

:meth:`ViT.save_pretrained` writes a HuggingFace folder (``model_type: vit``, tensor
names as ``transformers`` saves them), so ``ViTForImageClassification.from_pretrained``
reads it, and ``ViT.from_pretrained`` reads folders ``transformers`` wrote. Recent
``transformers`` versions name ViT's modules differently in memory
(``layers.0.attention.q_proj``) than on disk (``encoder.layer.0.attention.attention.query``);
:data:`MEMORY_ALIASES` maps the former to the latter before the shared rules apply.
Dicts in, dicts out (:mod:`attnlab.interop.hf_common`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.interop.hf_common import (  # noqa: F401 -- ENCODER_NAMES: the models name fields with it
    ENCODER_NAMES,
    encoder_config_from_hf,
    encoder_config_to_hf,
    labels_from_hf,
    rename,
    rename_one,
)

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


def config_to_hf(config: dict[str, Any]) -> dict[str, Any]:
    """A HF ``config.json`` dict from an attnlab ``ViTConfig``."""
    return {
        **encoder_config_to_hf(config, "vit", ARCHITECTURES[bool(config["labels"])]),
        "image_size": config["image_size"],
        "patch_size": config["patch_size"],
        "num_channels": config["num_channels"],
        "qkv_bias": config["qkv_bias"],
    }


def config_from_hf(hf: dict[str, Any], has_pooler: bool) -> dict[str, Any]:
    """``ViTConfig`` fields from a HF ``config.json`` dict (``has_pooler``: the weights hold one)."""
    fields = encoder_config_from_hf(hf, "vit", list(ARCHITECTURES.values()), dropout=0.0)
    classifier = fields.pop("architecture") == ARCHITECTURES[True]
    try:
        return dict(
            **fields, labels=labels_from_hf(hf) if classifier else [], image_size=hf["image_size"],
            patch_size=hf["patch_size"], num_channels=hf.get("num_channels", 3), qkv_bias=hf.get("qkv_bias", True),
            add_pooler=has_pooler,
        )
    except KeyError as e:
        raise AttnlabError(f"config.json: missing field {e.args[0]!r}") from None


def weights_to_hf(state: dict[str, Tensor], classifier: bool) -> dict[str, Tensor]:
    """HF tensors under the on-disk names (``vit.`` prefix with a classifier)."""
    prefix = "vit." if classifier else ""
    return {
        name if name.startswith("classifier.") else prefix + (rename_one(name, VIT_RULES) or name): tensor
        for name, tensor in state.items()
    }


def _on_disk(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return rename({k.removeprefix("vit."): v for k, v in tensors.items()}, MEMORY_ALIASES, reverse=True)


def weights_from_hf(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """An attnlab ViT state dict from HF tensors (either naming, with or without ``vit.``)."""
    return rename(_on_disk(tensors), VIT_RULES, reverse=True)


def has_pooler(tensors: dict[str, Tensor]) -> bool:
    return "pooler.dense.weight" in _on_disk(tensors)
