"""What the HuggingFace weight maps share: prefix renaming rules and the encoder config fields.

Every map in :mod:`attnlab.interop` is dicts in, dicts out: config fields (attnlab's names)
from/to a ``config.json`` dict, tensors under attnlab's names from/to tensors under HF's.
No module here imports a model; the models call these maps and load the tensors by name
(:meth:`attnlab.models.base.PretrainedModel._load_weights` names what is missing or left over).

A rule is an ``(attnlab prefix, HF prefix)`` pair; ``{i}`` stands for a layer index.
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor

from attnlab.errors import AttnlabError

Rules = list[tuple[str, str]]

# attnlab activation -> the HF name written to config.json
ACTIVATIONS_TO_HF = {
    "gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu", "silu": "silu", "quick_gelu": "quick_gelu",
    "tanh": "tanh", "sigmoid": "sigmoid", "mish": "mish", "relu6": "relu6",
}
# HF activation names (transformers' ACT2FN) -> attnlab's
ACTIVATIONS_FROM_HF = {
    **{v: k for k, v in ACTIVATIONS_TO_HF.items()},
    "gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh", "swish": "silu",
}


def activation_from_hf(name: str, field: str) -> str:
    """attnlab's name of HF activation ``name`` (the value of config field ``field``)."""
    if name not in ACTIVATIONS_FROM_HF:
        raise AttnlabError(f"config.json: {field} {name!r} is not supported; expected one of {sorted(ACTIVATIONS_FROM_HF)}")
    return ACTIVATIONS_FROM_HF[name]


def _compiled(rules: Rules, reverse: bool) -> list[tuple[re.Pattern, str]]:
    out = []
    for ours, theirs in rules:
        src, dst = (theirs, ours) if reverse else (ours, theirs)
        out.append((re.compile("^" + re.escape(src).replace(re.escape("{i}"), r"(\d+)")), dst.replace("{i}", r"\1")))
    return out


def rename_one(name: str, rules: Rules, reverse: bool = False) -> str | None:
    """``name`` renamed by the first rule whose prefix it has (HF -> attnlab with
    ``reverse``), or None when no rule applies."""
    for pattern, replacement in _compiled(rules, reverse):
        new, hits = pattern.subn(replacement, name)
        if hits:
            return new
    return None


def rename(tensors: dict[str, Tensor], rules: Rules, reverse: bool = False) -> dict[str, Tensor]:
    """Every tensor renamed by :func:`rename_one`; names no rule matches are kept, so the
    weight load that follows names them."""
    return {rename_one(k, rules, reverse) or k: v for k, v in tensors.items()}


def labels_from_hf(hf: dict[str, Any]) -> list[str]:
    """The class names of ``id2label``; HF leaves it out for its default of two labels
    (``num_labels`` 2), named ``LABEL_0``, ``LABEL_1`` as HF names them."""
    id2label = hf.get("id2label") or {}
    if id2label:
        try:
            return [str(id2label[k]) for k in sorted(id2label, key=int)]
        except (TypeError, ValueError):
            raise AttnlabError(f"config.json: id2label must map integer ids to names, got {id2label!r}") from None
    num_labels = hf.get("num_labels", 2)
    if not isinstance(num_labels, int) or num_labels < 1:
        raise AttnlabError(f"config.json: num_labels must be an integer >= 1, got {num_labels!r}")
    return [f"LABEL_{i}" for i in range(num_labels)]


def encoder_config_to_hf(config: dict[str, Any], model_type: str, architecture: str) -> dict[str, Any]:
    """The ``config.json`` fields BERT and ViT share (their attnlab configs share the names)."""
    hf = {
        "model_type": model_type,
        "architectures": [architecture],
        "hidden_size": config["hidden_size"],
        "num_hidden_layers": config["num_layers"],
        "num_attention_heads": config["num_heads"],
        "intermediate_size": config["intermediate_size"],
        "hidden_act": ACTIVATIONS_TO_HF[config["activation"]],
        "hidden_dropout_prob": config["dropout"],
        "attention_probs_dropout_prob": config["attention_dropout"],
        "layer_norm_eps": config["norm_eps"],
        "initializer_range": 0.02,
    }
    if config["labels"]:
        hf["id2label"] = {str(i): name for i, name in enumerate(config["labels"])}
        hf["label2id"] = {name: i for i, name in enumerate(config["labels"])}
    return hf


# attnlab field -> the key of HF's config.json (what messages about a field name)
ENCODER_NAMES = {
    "hidden_size": "hidden_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size", "activation": "hidden_act", "dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob", "norm_eps": "layer_norm_eps",
    "max_positions": "max_position_embeddings",
}


def encoder_config_from_hf(hf: dict[str, Any], model_type: str, architectures: list[str], dropout: float) -> dict[str, Any]:
    """Checked shared fields of a HuggingFace BERT/ViT ``config.json`` as attnlab config
    fields, plus ``architecture`` (the first of ``architectures`` when the file names none)."""
    if not isinstance(hf, dict):
        raise AttnlabError(f"config.json must hold an object, got {type(hf).__name__}")
    if hf.get("model_type", model_type) != model_type:
        raise AttnlabError(f"config.json holds a {hf.get('model_type')!r} model, not {model_type!r}")
    architecture = (hf.get("architectures") or [architectures[0]])[0]
    if architecture not in architectures:
        raise AttnlabError(f"config.json: architecture {architecture!r}: expected one of {sorted(architectures)}")
    try:
        return dict(
            hidden_size=hf["hidden_size"], num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
            intermediate_size=hf["intermediate_size"], activation=activation_from_hf(hf.get("hidden_act", "gelu"), "hidden_act"),
            dropout=hf.get("hidden_dropout_prob", dropout), attention_dropout=hf.get("attention_probs_dropout_prob", dropout),
            norm_eps=hf.get("layer_norm_eps", 1e-12), architecture=architecture,
        )
    except KeyError as e:
        raise AttnlabError(f"config.json: missing field {e.args[0]!r}") from None
