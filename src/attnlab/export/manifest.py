"""The schema of ``export.json``: every field a runtime reads, with its type and range,
checked before any file is opened or anything allocated.

    {"format": "attnlab-onnx", "format_version": 3, "model_type": one of MODEL_TYPES,
     "graphs":  {name: {"file": a file name, "bytes": int, "sha256": 64 hex digits,
                        "inputs": [...], "outputs": [...]}}     the model type's graphs, no other
     "weights": {"file": a file name, "bytes": int, "sha256": 64 hex digits},
     "config":  {the model type's fields: CONFIG[model_type]}}

A ``file`` is a plain file name (no ``/``, ``\\``, ``..``): the folder's files lie next to
``export.json``, and ONNX Runtime finds ``weights.data`` next to each graph. A wrong value is one
line naming the field and what was expected::

    out/export.json: config.num_heads: expected an integer in [1, 2147483647], got -4

The schema bounds every number; :mod:`attnlab.export.folder` then checks the config against
what the graphs themselves declare (layers, heads, vocabulary) before a runtime allocates
anything from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.models.bert import HEADS as BERT_HEADS

MAX_SIZE = 2**31 - 1  # a dimension ONNX Runtime can hold (vocabulary, layers, heads, widths)
MAX_LENGTH = 2**20  # tokens a decoding loop may run to, positions a model may have


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (``bool`` and ``1e3`` are not integers), or null if ``null``."""

    low: int
    high: int
    null: bool = False

    def accepts(self, value: Any) -> bool:
        return (value is None and self.null) or (type(value) is int and self.low <= value <= self.high)

    def __str__(self) -> str:
        return f"an integer in [{self.low}, {self.high}]" + (" or null" if self.null else "")


@dataclass(frozen=True)
class Text:
    """A string; one of ``choices`` if given; with ``pattern``, a string matching it (``what`` says how)."""

    choices: tuple[str, ...] = ()
    pattern: str | None = None
    what: str = "a string"

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        if self.choices:
            return value in self.choices
        return self.pattern is None or re.fullmatch(self.pattern, value) is not None

    def __str__(self) -> str:
        return f"one of {', '.join(map(repr, self.choices))}" if self.choices else self.what


@dataclass(frozen=True)
class Texts:
    """A list of strings."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list) and len(value) <= MAX_SIZE and all(isinstance(v, str) for v in value)

    def __str__(self) -> str:
        return "a list of strings"


@dataclass(frozen=True)
class Items:
    """A list (of graph inputs or outputs; informational)."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list)

    def __str__(self) -> str:
        return "a list"


SIZE, ID, LENGTH = Int(1, MAX_SIZE), Int(0, MAX_SIZE - 1), Int(1, MAX_LENGTH)
FILE = Text(pattern=r"(?!\.\.?$)[^/\\\0]+", what="a file name inside the export folder (no '/', '\\', '..')")
FILE_ENTRY = {"file": FILE, "bytes": Int(0, 2**63 - 1), "sha256": Text(pattern="[0-9a-f]{64}", what="64 hex digits")}
GRAPH_ENTRY = {**FILE_ENTRY, "inputs": Items(), "outputs": Items()}

GRAPHS = {"gpt2": ("prefill", "decode"), "transformer": ("encoder", "decoder"), "seq2seq": ("encoder", "decoder"),
          "bert": ("model",), "vit": ("model",), "gat": ("model",), "han": ("model",)}
MODEL_TYPES = tuple(GRAPHS)
_TRANSLATOR = {"src_vocab_size": SIZE, "tgt_vocab_size": SIZE, "pad_id": ID, "bos_id": ID, "eos_id": ID,
               "max_len": LENGTH}
CONFIG: dict[str, dict[str, Any]] = {
    "gpt2": {"vocab_size": SIZE, "context_length": LENGTH, "num_layers": SIZE, "num_heads": SIZE, "head_dim": SIZE,
             "eos_token_id": Int(0, MAX_SIZE - 1, null=True)},
    "transformer": {**_TRANSLATOR, "num_layers": SIZE, "num_heads": SIZE, "head_dim": SIZE},
    "seq2seq": {**_TRANSLATOR, "cell": Text(("gru", "lstm")), "attention": Text(), "feed_dim": SIZE},
    "bert": {"head": Text(BERT_HEADS), "labels": Texts(), "vocab_size": SIZE, "max_positions": LENGTH,
             "pad_token_id": ID},
    "vit": {"image_size": SIZE, "num_channels": SIZE, "labels": Texts()},
    "gat": {"in_dim": SIZE, "num_classes": SIZE},
    "han": {"in_dim": SIZE, "num_classes": SIZE, "num_metapaths": SIZE},
}


def check_manifest(path: Path, manifest: dict) -> dict:
    """``manifest`` (read from ``path``, its format version already checked) if every field
    a runtime reads has its type and range; else one line naming the first wrong field."""

    def fail(field: str, expected: Any, value: Any = ...) -> None:
        got = "nothing (the field is missing)" if value is ... else _shown(value)
        raise AttnlabError(f"{path}: {field}: expected {expected}, got {got}")

    def fields(prefix: str, value: Any, schema: dict) -> None:
        for name, kind in schema.items():
            if name not in value:
                fail(f"{prefix}{name}", kind)
            if not kind.accepts(value[name]):
                fail(f"{prefix}{name}", kind, value[name])

    model_type = manifest.get("model_type", ...)
    if model_type not in MODEL_TYPES:
        fail("model_type", Text(MODEL_TYPES), model_type)
    names = GRAPHS[model_type]
    for field, what in (("graphs", f"an object {{{', '.join(names)}}} of graph entries"),
                        ("weights", "an object {file, bytes, sha256}"), ("config", "an object of the model's settings")):
        if not isinstance(manifest.get(field), dict):
            fail(field, what, manifest.get(field, ...))
    if sorted(manifest["graphs"]) != sorted(names):
        fail("graphs", f"the graphs {', '.join(names)} of a {model_type!r} export", sorted(manifest["graphs"]))
    for name in names:
        entry = manifest["graphs"][name]
        if not isinstance(entry, dict):
            fail(f"graphs.{name}", "an object {file, bytes, sha256, inputs, outputs}", entry)
        fields(f"graphs.{name}.", entry, GRAPH_ENTRY)
    fields("weights.", manifest["weights"], FILE_ENTRY)
    fields("config.", manifest["config"], CONFIG[model_type])
    return manifest


def _shown(value: Any) -> str:
    """A short description of a wrong value: containers by kind, scalars as written."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list {value!r}" if len(repr(value)) <= 60 else "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
