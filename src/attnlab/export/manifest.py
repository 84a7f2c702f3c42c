"""``export.json``: reading it, and its schema -- every field a runtime reads, with its type
and range (CONFIG per model type, FILE_ENTRY and GRAPH_ENTRY for the files) -- checked by
one loop before any file is opened or anything allocated. A ``file`` is a plain file name
(no ``/``, ``\\``, ``..``). A wrong value is one line naming the field::

    out/export.json: config.num_heads: expected an integer in [1, 2147483647], got -4
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attnlab
from attnlab.errors import AttnlabError
from attnlab.io import read_json
from attnlab.models.bert import HEADS as BERT_HEADS

FORMAT_VERSION = 3  # 3: every graph's size and SHA-256 too (2: one weights.data shared by the graphs; 1: weights inside each .onnx)
MANIFEST = "export.json"
MAX_SIZE = 2**31 - 1  # a dimension ONNX Runtime can hold (vocabulary, layers, heads, widths)
MAX_LENGTH = 2**20  # tokens a decoding loop may run to, positions a model may have


@dataclass(frozen=True)
class Field:
    """A JSON value of type ``kind``: an int in ``[low, high]`` (or null if ``null``); a str
    among ``options``, or matching ``pattern``; a list (of ``items``). ``what`` says it in a
    message (``bool`` and ``1e3`` are not integers)."""

    kind: type
    low: int = 0
    high: int = 0
    null: bool = False
    options: tuple[str, ...] = ()
    pattern: str = "(?s).*"
    items: type | None = None
    what: str = ""

    def accepts(self, value: Any) -> bool:
        if value is None or type(value) is bool or not isinstance(value, self.kind):
            return value is None and self.null
        if self.kind is int:
            return self.low <= value <= self.high
        if self.kind is list:
            return self.items is None or all(isinstance(v, self.items) for v in value)
        return value in self.options if self.options else re.fullmatch(self.pattern, value) is not None

    def __str__(self) -> str:
        if self.kind is int:
            return f"an integer in [{self.low}, {self.high}]" + (" or null" if self.null else "")
        return self.what or f"one of {', '.join(map(repr, self.options))}"


SIZE, ID, LENGTH = Field(int, 1, MAX_SIZE), Field(int, 0, MAX_SIZE - 1), Field(int, 1, MAX_LENGTH)
FILE_ENTRY = {"file": Field(str, pattern=r"(?!\.\.?$)[^/\\\0]+", what="a file name inside the export folder (no '/', '\\', '..')"),
              "bytes": Field(int, 0, 2**63 - 1), "sha256": Field(str, pattern="[0-9a-f]{64}", what="64 hex digits")}
GRAPH_ENTRY = {**FILE_ENTRY, "inputs": Field(list, what="a list"), "outputs": Field(list, what="a list")}
LABELS = Field(list, items=str, what="a list of strings")
GRAPHS = {"gpt2": ("prefill", "decode"), "transformer": ("encoder", "decoder"), "seq2seq": ("encoder", "decoder"),
          "bert": ("model",), "vit": ("model",), "gat": ("model",), "han": ("model",)}
_TRANSLATOR = {"src_vocab_size": SIZE, "tgt_vocab_size": SIZE, "pad_id": ID, "bos_id": ID, "eos_id": ID, "max_len": LENGTH}
_CACHE = {"num_layers": SIZE, "num_heads": SIZE, "head_dim": SIZE}
CONFIG: dict[str, dict[str, Field]] = {
    "gpt2": {"vocab_size": SIZE, "context_length": LENGTH, **_CACHE, "eos_token_id": Field(int, 0, MAX_SIZE - 1, null=True)},
    "transformer": {**_TRANSLATOR, **_CACHE},
    "seq2seq": {**_TRANSLATOR, "cell": Field(str, options=("gru", "lstm")), "attention": Field(str, what="a string"),
                "feed_dim": SIZE},
    "bert": {"head": Field(str, options=tuple(BERT_HEADS)), "labels": LABELS, "vocab_size": SIZE, "max_positions": LENGTH,
             "pad_token_id": ID},
    "vit": {"image_size": SIZE, "num_channels": SIZE, "labels": LABELS},
    "gat": {"in_dim": SIZE, "num_classes": SIZE},
    "han": {"in_dim": SIZE, "num_classes": SIZE, "num_metapaths": SIZE},
}


def read_manifest(export_dir: str | Path) -> dict:
    """``export.json`` of an export folder, checked: an attnlab ONNX folder of this format
    version, every field of its type and range (:func:`check_manifest`)."""
    export_dir = Path(export_dir)
    path = export_dir / MANIFEST
    if not path.is_file():
        raise AttnlabError(f"{export_dir}: not an attnlab ONNX export (no {MANIFEST}); make one with `attnlab export`")
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != "attnlab-onnx":
        raise AttnlabError(f"{path}: not an attnlab ONNX manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise AttnlabError(
            f"{export_dir}: export format version {version} (attnlab {manifest.get('attnlab_version')}); this attnlab "
            f"({attnlab.__version__}) reads version {FORMAT_VERSION}: export the checkpoint again with this version"
        )
    return check_manifest(path, manifest)


def check_manifest(path: Path, manifest: dict) -> dict:
    """``manifest`` (read from ``path``, its format version already checked) if every field
    a runtime reads has its type and range; else one line naming the first wrong field."""
    model_type = manifest.get("model_type", ...)
    if model_type not in tuple(GRAPHS):
        refuse(path, "model_type", Field(str, options=tuple(GRAPHS)), model_type)
    names = GRAPHS[model_type]
    for field, what in (("graphs", f"an object {{{', '.join(names)}}} of graph entries"),
                        ("weights", "an object {file, bytes, sha256}"), ("config", "an object of the model's settings")):
        if not isinstance(manifest.get(field), dict):
            refuse(path, field, what, manifest.get(field, ...))
    if sorted(manifest["graphs"]) != sorted(names):
        refuse(path, "graphs", f"the graphs {', '.join(names)} of a {model_type!r} export", sorted(manifest["graphs"]))
    for prefix, entry, schema in [*((f"graphs.{n}", manifest["graphs"][n], GRAPH_ENTRY) for n in names),
                                  ("weights", manifest["weights"], FILE_ENTRY), ("config", manifest["config"], CONFIG[model_type])]:
        if not isinstance(entry, dict):
            refuse(path, prefix, "an object {file, bytes, sha256, inputs, outputs}", entry)
        for name, field in schema.items():  # the one loop every field goes through
            if not field.accepts(entry.get(name, ...)):
                refuse(path, f"{prefix}.{name}", field, entry.get(name, ...))
    return manifest


def refuse(path: Path, field: str, expected: Any, value: Any) -> None:
    """One line: ``path: field: expected ..., got ...`` (``value`` ``...``: missing)."""
    text = repr(value)
    if len(text) > 60:
        text = "" if isinstance(value, list) else text[:57] + "..."
    got = ("nothing (the field is missing)" if value is ... else "an object" if isinstance(value, dict) else
           f"a list {text}".rstrip() if isinstance(value, list) else text)
    raise AttnlabError(f"{path}: {field}: expected {expected}, got {got}")
