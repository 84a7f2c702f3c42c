"""BERT <-> HuggingFace ``transformers``: config fields and tensor names, both ways.

A checkpoint folder written by :meth:`BERT.save_pretrained` is a HuggingFace folder
(``config.json`` with ``model_type: bert`` + ``model.safetensors`` with HF's tensor
names), so ``BertForPreTraining.from_pretrained(folder)`` loads it, and
``BERT.from_pretrained`` loads folders written by ``transformers``. Dicts in, dicts out
(:mod:`attnlab.interop.hf_common`): the model builds itself from :func:`config_from_hf`'s
fields and loads :func:`weights_from_hf`'s tensors by name.

Heads (attnlab ``head`` = HF architecture): base = BertModel, pretraining =
BertForPreTraining, mlm = BertForMaskedLM, lm = BertLMHeadModel (``is_decoder``: causal),
nsp = BertForNextSentencePrediction, classifier = BertForSequenceClassification.
"""

from __future__ import annotations

import re
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

BERT_RULES = [
    ("embeddings.word.", "embeddings.word_embeddings."),
    ("embeddings.position.", "embeddings.position_embeddings."),
    ("embeddings.token_type.", "embeddings.token_type_embeddings."),
    ("embeddings.norm.", "embeddings.LayerNorm."),
    ("layers.{i}.self_attn.q_proj.", "encoder.layer.{i}.attention.self.query."),
    ("layers.{i}.self_attn.k_proj.", "encoder.layer.{i}.attention.self.key."),
    ("layers.{i}.self_attn.v_proj.", "encoder.layer.{i}.attention.self.value."),
    ("layers.{i}.self_attn.score_bias.distance.", "encoder.layer.{i}.attention.self.distance_embedding."),
    ("layers.{i}.self_attn.out_proj.", "encoder.layer.{i}.attention.output.dense."),
    ("layers.{i}.attn_residual.norm.", "encoder.layer.{i}.attention.output.LayerNorm."),
    ("layers.{i}.ffn.linear1.", "encoder.layer.{i}.intermediate.dense."),
    ("layers.{i}.ffn.linear2.", "encoder.layer.{i}.output.dense."),
    ("layers.{i}.ffn_residual.norm.", "encoder.layer.{i}.output.LayerNorm."),
    ("pooler.", "pooler.dense."),
]
# a decoder with cross-attention (add_cross_attention): its blocks name the first residual differently
CROSS_RULES = [
    ("layers.{i}.self_residual.norm.", "encoder.layer.{i}.attention.output.LayerNorm."),
    *((f"layers.{{i}}.cross_attn.{ours}.", f"encoder.layer.{{i}}.crossattention.self.{hf}.")
      for ours, hf in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value"))),
    ("layers.{i}.cross_attn.out_proj.", "encoder.layer.{i}.crossattention.output.dense."),
    ("layers.{i}.cross_residual.norm.", "encoder.layer.{i}.crossattention.output.LayerNorm."),
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
    "lm": "BertLMHeadModel",
    "nsp": "BertForNextSentencePrediction",
    "classifier": "BertForSequenceClassification",
}
POSITION_TYPES = ("absolute", "relative_key", "relative_key_query")
# Tensors HF may store that carry nothing new: tied decoder, buffers of old versions.
REDUNDANT = re.compile(r"(cls\.predictions\.decoder\.(weight|bias)|.*position_ids|.*token_type_ids)$")


def config_to_hf(config: dict[str, Any]) -> dict[str, Any]:
    """A HF ``config.json`` dict from attnlab ``BERTConfig`` fields."""
    return {
        **encoder_config_to_hf(config, "bert", ARCHITECTURES[config["head"]]),
        "vocab_size": config["vocab_size"],
        "classifier_dropout": config["classifier_dropout"],
        "max_position_embeddings": config["max_positions"],
        "type_vocab_size": config["type_vocab_size"],
        "pad_token_id": config["pad_token_id"],
        "position_embedding_type": config["position_embedding_type"],
        "is_decoder": config["is_decoder"],
        "add_cross_attention": config["add_cross_attention"],
        "tie_word_embeddings": True,
    }


def config_from_hf(hf: dict[str, Any], has_pooler: bool) -> dict[str, Any]:
    """``BERTConfig`` fields from a HF ``config.json`` dict (``has_pooler``: the weights hold one)."""
    fields = encoder_config_from_hf(hf, "bert", list(ARCHITECTURES.values()), dropout=0.1)
    head = {v: k for k, v in ARCHITECTURES.items()}[fields.pop("architecture")]
    position_type = hf.get("position_embedding_type") or "absolute"
    if position_type not in POSITION_TYPES:
        raise AttnlabError(f"config.json: position_embedding_type {position_type!r}: expected one of {POSITION_TYPES}")
    try:
        return dict(
            **fields, labels=labels_from_hf(hf) if head == "classifier" else [],
            vocab_size=hf["vocab_size"], max_positions=hf["max_position_embeddings"],
            type_vocab_size=hf.get("type_vocab_size", 2), classifier_dropout=hf.get("classifier_dropout"),
            pad_token_id=hf.get("pad_token_id") or 0, head=head, add_pooler=has_pooler,
            is_decoder=bool(hf.get("is_decoder", False)), position_embedding_type=position_type,
            add_cross_attention=bool(hf.get("add_cross_attention", False)),
        )
    except KeyError as e:
        raise AttnlabError(f"config.json: missing field {e.args[0]!r}") from None


def weights_to_hf(state: dict[str, Tensor], head: str) -> dict[str, Tensor]:
    """HF tensors (``bert.`` prefix but for BertModel) from an attnlab BERT state dict."""
    prefix = "" if head == "base" else "bert."
    out = {}
    for name, tensor in state.items():
        head_name = rename_one(name, HEAD_RULES)
        out[head_name if head_name is not None else prefix + (rename_one(name, CROSS_RULES + BERT_RULES) or name)] = tensor
    return out


def strip_prefix(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """HF tensors without the ``bert.`` prefix and without the redundant ones."""
    return {k.removeprefix("bert."): v for k, v in tensors.items() if not REDUNDANT.match(k)}


def weights_from_hf(tensors: dict[str, Tensor], cross_attention: bool = False) -> dict[str, Tensor]:
    """An attnlab BERT state dict from HF tensors (any of the architectures; ``cross_attention``:
    a decoder with cross-attention layers)."""
    rules = CROSS_RULES + BERT_RULES if cross_attention else BERT_RULES
    return rename(rename(strip_prefix(tensors), HEAD_RULES, reverse=True), rules, reverse=True)


def has_pooler(tensors: dict[str, Tensor]) -> bool:
    return "pooler.dense.weight" in strip_prefix(tensors)
