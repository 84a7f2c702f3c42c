"""BERT <-> HuggingFace ``transformers``: the same weights under HF's names and config.

A checkpoint folder written by :meth:`BERT.save_pretrained` is a HuggingFace folder
(``config.json`` with ``model_type: bert`` + ``model.safetensors`` with HF's tensor
names), so ``BertForPreTraining.from_pretrained(folder)`` loads it, and
``BERT.from_pretrained`` loads folders written by ``transformers``.

Tensor names are translated by ordered regex rules (:func:`rename`); the same helper
serves ViT (:mod:`attnlab.interop.hf_vit`).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from attnlab.errors import AttnlabError

# (attnlab name, HuggingFace name) prefixes; ``{i}`` stands for a layer index.
BERT_RULES = [
    ("embeddings.word.", "embeddings.word_embeddings."),
    ("embeddings.position.", "embeddings.position_embeddings."),
    ("embeddings.token_type.", "embeddings.token_type_embeddings."),
    ("embeddings.norm.", "embeddings.LayerNorm."),
    ("layers.{i}.self_attn.q_proj.", "encoder.layer.{i}.attention.self.query."),
    ("layers.{i}.self_attn.k_proj.", "encoder.layer.{i}.attention.self.key."),
    ("layers.{i}.self_attn.v_proj.", "encoder.layer.{i}.attention.self.value."),
    ("layers.{i}.self_attn.out_proj.", "encoder.layer.{i}.attention.output.dense."),
    ("layers.{i}.attn_residual.norm.", "encoder.layer.{i}.attention.output.LayerNorm."),
    ("layers.{i}.ffn.linear1.", "encoder.layer.{i}.intermediate.dense."),
    ("layers.{i}.ffn.linear2.", "encoder.layer.{i}.output.dense."),
    ("layers.{i}.ffn_residual.norm.", "encoder.layer.{i}.output.LayerNorm."),
    ("pooler.", "pooler.dense."),
]
HEAD_RULES = [  # outside the "bert." prefix in HF's task models
    ("mlm_dense.", "cls.predictions.transform.dense."),
    ("mlm_norm.", "cls.predictions.transform.LayerNorm."),
    ("mlm_bias", "cls.predictions.bias"),
    ("nsp.", "cls.seq_relationship."),
    ("classifier.", "classifier."),
]
ARCHITECTURES = {
    "base": "BertModel",
    "pretraining": "BertForPreTraining",
    "mlm": "BertForMaskedLM",
    "classifier": "BertForSequenceClassification",
}
ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}
HF_ACTIVATIONS = {**{v: k for k, v in ACTIVATIONS.items()}, "gelu_new": "gelu_tanh"}
# Tensors HF may store that carry nothing new: tied decoder, buffers of old versions.
REDUNDANT = re.compile(r"(cls\.predictions\.decoder\.(weight|bias)|.*position_ids|.*token_type_ids)$")


def rename_one(name: str, rules: list[tuple[str, str]], reverse: bool = False) -> str | None:
    """``name`` renamed by the first rule whose prefix it has (HF -> attnlab with
    ``reverse``), or None when no rule applies."""
    for ours, theirs in rules:
        src, dst = (theirs, ours) if reverse else (ours, theirs)
        pattern = "^" + re.escape(src).replace(re.escape("{i}"), r"(\d+)")
        new, hits = re.subn(pattern, dst.replace("{i}", r"\1"), name)
        if hits:
            return new
    return None


def rename(tensors: dict[str, torch.Tensor], rules: list[tuple[str, str]], reverse: bool = False) -> dict[str, torch.Tensor]:
    """Rename every tensor by :func:`rename_one`; names no rule matches are kept, so the
    strict weight load that follows names them."""
    return {rename_one(k, rules, reverse) or k: v for k, v in tensors.items()}


def load_renamed(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load ``tensors`` (attnlab names) into ``model``; every weight must be present."""
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise AttnlabError(
            f"{source}: weights do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model


# --- config --------------------------------------------------------------------------
def encoder_config_to_hf(config, model_type: str, architecture: str) -> dict[str, Any]:
    """The ``config.json`` fields BERT and ViT share (their attnlab configs share the names)."""
    hf = {
        "model_type": model_type,
        "architectures": [architecture],
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": ACTIVATIONS[config.activation],
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "layer_norm_eps": config.norm_eps,
        "initializer_range": 0.02,
    }
    if config.labels:
        hf["id2label"] = {str(i): name for i, name in enumerate(config.labels)}
        hf["label2id"] = {name: i for i, name in enumerate(config.labels)}
    return hf


def encoder_config_from_hf(hf: dict[str, Any], model_type: str, architectures: list[str], dropout: float) -> dict[str, Any]:
    """Checked shared fields of a HuggingFace BERT/ViT ``config.json`` as attnlab config
    fields, plus ``architecture`` and the ``labels`` named by ``id2label``."""
    if hf.get("model_type", model_type) != model_type:
        raise AttnlabError(f"config.json holds a {hf.get('model_type')!r} model, not {model_type!r}")
    if hf.get("hidden_act", "gelu") not in HF_ACTIVATIONS:
        raise AttnlabError(f"hidden_act {hf['hidden_act']!r}: expected one of {sorted(HF_ACTIVATIONS)}")
    architecture = (hf.get("architectures") or [architectures[0]])[0]
    if architecture not in architectures:
        raise AttnlabError(f"architecture {architecture!r}: expected one of {sorted(architectures)}")
    id2label = hf.get("id2label") or {}
    return dict(
        hidden_size=hf["hidden_size"], num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"], activation=HF_ACTIVATIONS[hf.get("hidden_act", "gelu")],
        dropout=hf.get("hidden_dropout_prob", dropout), attention_dropout=hf.get("attention_probs_dropout_prob", dropout),
        norm_eps=hf.get("layer_norm_eps", 1e-12), architecture=architecture,
        labels=[id2label[k] for k in sorted(id2label, key=int)],
    )


def config_to_hf(config) -> dict[str, Any]:
    return {
        **encoder_config_to_hf(config, "bert", ARCHITECTURES[config.head]),
        "vocab_size": config.vocab_size,
        "classifier_dropout": config.classifier_dropout,
        "max_position_embeddings": config.max_positions,
        "type_vocab_size": config.type_vocab_size,
        "pad_token_id": config.pad_token_id,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }


def config_from_hf(hf: dict[str, Any], has_pooler: bool):
    from attnlab.models.bert import BERTConfig

    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise AttnlabError(f"position_embedding_type {hf['position_embedding_type']!r}: only 'absolute' is supported")
    fields = encoder_config_from_hf(hf, "bert", list(ARCHITECTURES.values()), dropout=0.1)
    head = {v: k for k, v in ARCHITECTURES.items()}[fields.pop("architecture")]
    if head != "classifier":
        fields["labels"] = []
    return BERTConfig(
        **fields, vocab_size=hf["vocab_size"], max_positions=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2), classifier_dropout=hf.get("classifier_dropout"),
        pad_token_id=hf.get("pad_token_id") or 0, head=head, add_pooler=has_pooler,
    )


# --- checkpoints -------------------------------------------------------------------------
def to_hf_checkpoint(model) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config.json dict, tensors under HF names)`` of an attnlab BERT."""
    prefix = "" if model.config.head == "base" else "bert."
    tensors = {}
    for name, tensor in model.state_dict().items():
        head = rename_one(name, HEAD_RULES)
        tensors[head if head is not None else prefix + rename_one(name, BERT_RULES)] = tensor
    return config_to_hf(model.config), tensors


def from_hf_checkpoint(hf_config: dict[str, Any], tensors: dict[str, torch.Tensor]):
    """An attnlab BERT from a HuggingFace ``config.json`` dict and its tensors."""
    from attnlab.models.bert import BERT

    tensors = {k.removeprefix("bert."): v for k, v in tensors.items() if not REDUNDANT.match(k)}
    config = config_from_hf(hf_config, has_pooler="pooler.dense.weight" in tensors)
    ours = rename(rename(tensors, HEAD_RULES, reverse=True), BERT_RULES, reverse=True)
    return load_renamed(BERT(config), ours, "BERT checkpoint")


def copy_from_hf(hf_model: nn.Module, from_checkpoint) -> nn.Module:
    """``from_checkpoint(config dict, tensors)`` on a live ``transformers`` model, placed on
    its device and dtype and in its train/eval mode."""
    config = hf_model.config.to_dict()
    config["architectures"] = [type(hf_model).__name__]
    model = from_checkpoint(config, dict(hf_model.state_dict()))
    weight = next(hf_model.parameters())
    return model.to(device=weight.device, dtype=weight.dtype).train(hf_model.training)


def from_hf(hf_model: nn.Module):
    """An attnlab BERT holding a copy of a ``transformers`` BERT model's weights."""
    return copy_from_hf(hf_model, from_hf_checkpoint)
