"""HuggingFace GPT-2 <-> attnlab GPT: config fields and weight names, both ways.

HF's GPT-2 keeps its projections in ``Conv1D`` modules whose weight is stored
transposed, ``(in, out)``, where ``nn.Linear`` stores ``(out, in)``; its attention input
projection ``c_attn`` is q, k and v side by side. Per layer ``i`` (D = n_embd)::

    h.i.ln_1.{weight,bias}         blocks.i.attn_residual.norm.{weight,bias}
    h.i.attn.c_attn.weight (D,3D)  blocks.i.self_attn.{q,k,v}_proj.weight  (D,D) each, transposed
    h.i.attn.c_proj.weight (D,D)   blocks.i.self_attn.out_proj.weight      transposed
    h.i.ln_2.{weight,bias}         blocks.i.ffn_residual.norm.{weight,bias}
    h.i.mlp.c_fc.weight (D,Dff)    blocks.i.ffn.linear1.weight             transposed
    h.i.mlp.c_proj.weight (Dff,D)  blocks.i.ffn.linear2.weight             transposed
    wte / wpe / ln_f               token_embedding / positions.embedding / final_norm

HF keys may carry a ``transformer.`` prefix (``GPT2LMHeadModel``) or not (``GPT2Model``,
the original hub files); ``lm_head.weight`` is tied to ``wte`` and not stored. Configs
are plain dicts here (the keys of :class:`attnlab.models.gpt.GPTConfig`), so this module
does not import the model. A HF folder's tokenizer files load as byte-level BPE.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models
from torch import Tensor

from attnlab.data.tokenizer import (
    BACKEND_FILE,
    GPT2_SPECIAL_TOKENS,
    ByteLevelBPETokenizer,
    Tokenizer,
    byte_level_backend,
)
from attnlab.data.tokenizer import CONFIG_FILE as TOKENIZER_CONFIG
from attnlab.errors import AttnlabError
from attnlab.interop.hf_common import ACTIVATIONS_TO_HF, activation_from_hf
from attnlab.io import read_json

# HF buffers of old checkpoints that hold no weights (the causal mask): h.i.attn.bias, ...
_BUFFERS = re.compile(r"h\.\d+\.attn\.(masked_)?bias")


# GPTConfig field -> the key of HF's config.json (what messages about a field name)
CONFIG_NAMES = {
    "context_length": "n_positions", "num_layers": "n_layer", "num_heads": "n_head", "d_model": "n_embd",
    "d_ff": "n_inner", "dropout": "resid_pdrop", "attention_dropout": "attn_pdrop", "norm_eps": "layer_norm_epsilon",
    "activation": "activation_function",
}


def config_from_hf(hf: dict[str, Any]) -> dict[str, Any]:
    """GPTConfig fields from a HF ``GPT2Config`` dict; unsupported variants raise."""
    if not isinstance(hf, dict):
        raise AttnlabError(f"GPT-2 config.json must hold an object, got {type(hf).__name__}")
    unsupported = {
        "add_cross_attention": (hf.get("add_cross_attention", False), False),
        "tie_word_embeddings": (hf.get("tie_word_embeddings", True), True),
    }
    for name, (value, expected) in unsupported.items():
        if value != expected:
            raise AttnlabError(f"GPT-2 config: {name}={hf.get(name)!r} is not supported (attnlab's GPT is plain GPT-2)")
    if "vocab_size" not in hf:
        raise AttnlabError("GPT-2 config.json: missing field 'vocab_size'")
    return {
        "vocab_size": hf["vocab_size"],
        "context_length": hf.get("n_positions", 1024),
        "num_layers": hf.get("n_layer", 12),
        "num_heads": hf.get("n_head", 12),
        "d_model": hf.get("n_embd", 768),
        "d_ff": hf.get("n_inner"),
        "dropout": hf.get("resid_pdrop", 0.1),
        "attention_dropout": hf.get("attn_pdrop", 0.1),
        "norm_eps": hf.get("layer_norm_epsilon", 1e-5),
        "eos_token_id": _eos(hf),
        "activation": activation_from_hf(hf.get("activation_function", "gelu_new"), "activation_function"),
        "scale_attn_weights": bool(hf.get("scale_attn_weights", True)),
        "scale_attn_by_inverse_layer_idx": bool(hf.get("scale_attn_by_inverse_layer_idx", False)),
        "reorder_and_upcast_attn": bool(hf.get("reorder_and_upcast_attn", False)),
    }


def _eos(hf: dict[str, Any]) -> int | None:
    """The EOS id, or None when HF's config names one outside the vocabulary (GPT2Config's
    default 50256 with a small vocabulary: HF itself only warns)."""
    eos, vocab = hf.get("eos_token_id"), hf.get("vocab_size")
    if isinstance(eos, int) and isinstance(vocab, int) and not 0 <= eos < vocab:
        return None
    return eos


def config_to_hf(config: dict[str, Any]) -> dict[str, Any]:
    """A HF ``config.json`` dict that ``transformers.GPT2LMHeadModel`` loads."""
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config["vocab_size"],
        "n_positions": config["context_length"],
        "n_ctx": config["context_length"],
        "n_layer": config["num_layers"],
        "n_head": config["num_heads"],
        "n_embd": config["d_model"],
        "n_inner": config["d_ff"],
        "activation_function": "gelu_new" if config["activation"] == "gelu_tanh" else ACTIVATIONS_TO_HF[config["activation"]],
        "resid_pdrop": config["dropout"],
        "embd_pdrop": config["dropout"],
        "attn_pdrop": config["attention_dropout"],
        "layer_norm_epsilon": config["norm_eps"],
        "bos_token_id": config["eos_token_id"],
        "eos_token_id": config["eos_token_id"],
        "tie_word_embeddings": True,
        "scale_attn_weights": config["scale_attn_weights"],
        "scale_attn_by_inverse_layer_idx": config["scale_attn_by_inverse_layer_idx"],
        "reorder_and_upcast_attn": config["reorder_and_upcast_attn"],
    }


def _layer_map(i: int) -> list[tuple[str, str, bool]]:
    """(HF name, attnlab name, transposed) for the single-tensor weights of layer ``i``."""
    hf, ours = f"h.{i}.", f"blocks.{i}."
    pairs = [
        ("ln_1", "attn_residual.norm", False), ("ln_2", "ffn_residual.norm", False),
        ("attn.c_proj", "self_attn.out_proj", True),
        ("mlp.c_fc", "ffn.linear1", True), ("mlp.c_proj", "ffn.linear2", True),
    ]
    out = []
    for h, o, transposed in pairs:
        out.append((f"{hf}{h}.weight", f"{ours}{o}.weight", transposed))
        out.append((f"{hf}{h}.bias", f"{ours}{o}.bias", False))
    return out


_TOP = [("wte.weight", "token_embedding.weight"), ("wpe.weight", "positions.embedding.weight"),
        ("ln_f.weight", "final_norm.weight"), ("ln_f.bias", "final_norm.bias")]
_QKV = ("q_proj", "k_proj", "v_proj")


def weights_from_hf(tensors: dict[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    """attnlab GPT state dict from HF GPT-2 tensors (with or without ``transformer.``)."""
    hf = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    hf = {k: v for k, v in hf.items() if not _BUFFERS.fullmatch(k)}
    head = hf.pop("lm_head.weight", None)
    if head is not None and "wte.weight" in hf and not torch.equal(head, hf["wte.weight"]):
        raise AttnlabError("GPT-2 weights: lm_head.weight differs from wte.weight; only tied embeddings are supported")
    out = {ours: hf.pop(name) for name, ours in _TOP if name in hf}
    for i in range(num_layers):
        for name, ours, transposed in _layer_map(i):
            if name in hf:
                w = hf.pop(name)
                out[ours] = w.t().contiguous() if transposed else w
        for suffix in ("weight", "bias"):
            fused = hf.pop(f"h.{i}.attn.c_attn.{suffix}", None)
            if fused is not None:  # (D, 3D) or (3D,): q | k | v along the last dim
                for proj, part in zip(_QKV, fused.chunk(3, dim=-1)):
                    out[f"blocks.{i}.self_attn.{proj}.{suffix}"] = part.t().contiguous() if suffix == "weight" else part
    out.update(hf)  # what no rule maps: the model's weight check names it as unexpected
    return out


def weights_to_hf(state: dict[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    """HF ``GPT2LMHeadModel`` tensors (``transformer.`` prefix, tied head left out)."""
    out = {f"transformer.{name}": state[ours] for name, ours in _TOP}
    for i in range(num_layers):
        for name, ours, transposed in _layer_map(i):
            out[f"transformer.{name}"] = state[ours].t() if transposed else state[ours]
        attn = f"blocks.{i}.self_attn."
        out[f"transformer.h.{i}.attn.c_attn.weight"] = torch.cat([state[f"{attn}{p}.weight"].t() for p in _QKV], dim=1)
        out[f"transformer.h.{i}.attn.c_attn.bias"] = torch.cat([state[f"{attn}{p}.bias"] for p in _QKV])
    return out


def tokenizer_from_hf_folder(directory: str | Path) -> Tokenizer:
    """The tokenizer of a checkpoint folder: attnlab's files, or a HF GPT-2 folder's
    ``tokenizer.json`` or ``vocab.json`` + ``merges.txt`` (read as byte-level BPE)."""
    directory = Path(directory)
    config_path = directory / TOKENIZER_CONFIG
    config = read_json(config_path) if config_path.exists() else {}
    if "kind" in config:
        return Tokenizer.load(directory)
    try:
        if (directory / BACKEND_FILE).is_file():
            backend = HFTokenizer.from_file(str(directory / BACKEND_FILE))
        elif (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
            backend = byte_level_backend(models.BPE.from_file(str(directory / "vocab.json"), str(directory / "merges.txt")))
        else:
            raise AttnlabError(f"{directory}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt)")
    except Exception as e:  # the backend raises its own exception types on bad files
        if isinstance(e, AttnlabError):
            raise
        raise AttnlabError(f"{directory}: unreadable tokenizer files ({e})") from None
    return ByteLevelBPETokenizer(backend, GPT2_SPECIAL_TOKENS)
