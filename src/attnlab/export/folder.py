"""Opening an export folder: after export.json's schema (:mod:`attnlab.export.manifest`),
before ONNX Runtime gets a graph or a runtime allocates anything from the config --

    1. every file listed resolves inside the folder and has its recorded size and SHA-256
    2. each graph, parsed without its weights, reads external data only from the checked
       weights file, within its size
    3. the config agrees with what the graphs declare (AGREE, NEEDS, TOKEN_IDS)

-- each disagreement one line naming the field, what the graph says and what the config says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from attnlab.errors import AttnlabError
from attnlab.export.manifest import short
from attnlab.export.weights import check_file


class Agree(NamedTuple):
    """``config[field]`` (a list: its length) equals the static size of ``tensor`` along
    ``axis`` in ``graph``, or (``axis`` None) the number of its inputs ``tensor.format(0)``,
    ``.format(1)``, ...; ``optional``: only when the graph has the tensor."""

    field: str
    graph: str
    tensor: str
    axis: int | None
    where: str
    optional: bool = False


def _cache(graph: str, prefix: str) -> list[Agree]:
    key, shape = f"{prefix}.0.key", f"{prefix}.0.key (B, H, P, Dh)"
    return [Agree("num_layers", graph, prefix + ".{}.key", None, f"the {graph} graph's {prefix}.i.key inputs"),
            Agree("num_heads", graph, key, 1, f"axis 1 of {shape}"), Agree("head_dim", graph, key, 3, f"axis 3 of {shape}")]


_TRANSLATOR = [Agree("tgt_vocab_size", "decoder", "log_probs", 2, "the last axis of the decoder's log_probs")]
_NODES = [Agree("in_dim", "model", "x", 1, "axis 1 of x (N, F)"), Agree("num_classes", "model", "logits", 1, "axis 1 of logits (N, C)")]
_LABELS = Agree("labels", "model", "logits", 1, "labels: axis 1 of logits", optional=True)
AGREE = {
    "gpt2": [*_cache("decode", "past"), Agree("vocab_size", "decode", "logits", 2, "the last axis of decode's logits")],
    "transformer": [*_cache("decoder", "past"), *_cache("decoder", "cross"), *_TRANSLATOR],
    "seq2seq": [Agree("feed_dim", "decoder", "feed", 1, "axis 1 of the decoder's feed input"), *_TRANSLATOR],
    "bert": [Agree("vocab_size", "model", "mlm_logits", 2, "the last axis of mlm_logits", optional=True), _LABELS],
    "vit": [*(Agree(f, "model", "pixel_values", a, f"axis {a} of pixel_values")
              for f, a in (("num_channels", 1), ("image_size", 2), ("image_size", 3))), _LABELS],
    "gat": _NODES,
    "han": [*_NODES, Agree("num_metapaths", "model", "edge_index.{}", None, "the graph's edge_index.p inputs")],
}
# a setting that decides whether a graph has a tensor: (field, test of its value, graph, tensor, has it)
NEEDS: dict[str, list[tuple[str, Callable[[Any], bool], str, str, bool]]] = {
    "seq2seq": [("cell", "lstm".__eq__, "decoder", "c", True), ("cell", "gru".__eq__, "decoder", "c", False)],
    "bert": [("head", ("pretraining", "mlm").__contains__, "model", "mlm_logits", True),
             ("head", "classifier".__eq__, "model", "logits", True)],
    "vit": [("labels", bool, "model", "logits", True)],
}
_TRANSLATOR_IDS = [("bos_id", "tgt_vocab_size"), ("eos_id", "tgt_vocab_size"), ("pad_id", "src_vocab_size")]
TOKEN_IDS = {"gpt2": [("eos_token_id", "vocab_size")], "transformer": _TRANSLATOR_IDS, "seq2seq": _TRANSLATOR_IDS,
             "bert": [("pad_token_id", "vocab_size")]}


def open_folder(directory: Path, manifest: dict) -> dict[str, Path]:
    """Steps 2-4 of the module docstring for a manifest that passed step 1; the graph files
    by graph name, safe to hand to ONNX Runtime."""
    weights = manifest["weights"]
    check_file(directory, weights, "weights.file", "weights file")
    paths, signatures = {}, {}
    for name, entry in manifest["graphs"].items():
        paths[name] = check_file(directory, entry, f"graphs.{name}.file", "graph file")
        graph = _parse(paths[name])
        _check_external_data(paths[name], graph, weights)
        signatures[name] = {v.name: _dims(v) for v in (*graph.input, *graph.output)}
    check_config(directory / "export.json", manifest["model_type"], manifest["config"], signatures)
    return paths


def _parse(path: Path):
    """The graph of ``path`` (an ONNX model), its external data not loaded."""
    try:
        import onnx
    except ImportError:
        raise AttnlabError("onnx is not installed: pip install 'attnlab[onnx]'") from None
    try:
        return onnx.load(str(path), load_external_data=False).graph
    except Exception as error:  # noqa: BLE001 - protobuf's decode errors have their own types
        raise AttnlabError(f"{path}: not a readable ONNX graph ({type(error).__name__})") from None


def _dims(value) -> list:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def _tensors(graph) -> Iterator:
    """Every tensor a graph holds: initializers, sparse ones, node attributes, subgraphs'."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            yield from ([attribute.t] if attribute.HasField("t") else [])
            yield from attribute.tensors
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _tensors(sub)


def _check_external_data(path: Path, graph, weights: dict) -> None:
    """Every externally stored tensor of ``graph`` reads ``weights["file"]`` within its bytes."""
    for tensor in _tensors(graph):
        fields = {entry.key: entry.value for entry in tensor.external_data}
        if not fields and tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        offset, length = fields.get("offset", "0"), fields.get("length", "")
        if fields.get("location") != weights["file"]:
            raise AttnlabError(f"{path}: tensor {tensor.name!r} reads its data from {fields.get('location')!r}; "
                               f"an export's graphs read only {weights['file']!r} (refused before loading)")
        if not (offset.isdigit() and length.isdigit() and int(offset) + int(length) <= weights["bytes"]):
            raise AttnlabError(f"{path}: tensor {tensor.name!r} reads bytes {offset}+{length or '?'} of "
                               f"{weights['file']}, which has {weights['bytes']} (refused before loading)")


def check_config(path: Path, model_type: str, config: dict, signatures: dict[str, dict[str, list]]) -> None:
    """``config`` against the graphs' declared inputs and outputs (``signatures[graph][tensor]``
    = its dims): NEEDS, AGREE, then TOKEN_IDS of ``model_type``, each rule one line."""

    def fail(field: str, expected: str, got: object) -> None:
        raise AttnlabError(f"{path}: config.{field}: expected {expected}, got {got}")

    for field, test, graph, tensor, has in NEEDS.get(model_type, []):
        if test(config[field]) and (tensor in signatures[graph]) != has:
            fail(field, f"a setting the {graph} graph computes (it {'has no' if has else 'has a'} {tensor})", short(config[field]))
    for rule in AGREE[model_type]:
        if rule.optional and rule.tensor not in signatures[rule.graph]:
            continue
        declared = _count(path, signatures[rule.graph], rule) if rule.axis is None else _dim(path, signatures, rule)
        value = config[rule.field]
        if isinstance(value, list) and not value:  # no labels: nothing to agree with
            continue
        size = len(value) if isinstance(value, list) else value
        if declared is not None and size != declared:
            fail(rule.field, f"{declared} ({rule.where})", f"{size}: {short(value)}" if isinstance(value, list) else value)
    for field, vocab in TOKEN_IDS.get(model_type, []):
        value, size = config[field], config[vocab]
        if value is not None and not 0 <= value < size:
            fail(field, f"an id in [0, {size}) (config.{vocab})", value)


def _count(path: Path, signature: dict[str, list], rule: Agree) -> int:
    """How many inputs ``rule.tensor.format(0)``, ``.format(1)``, ... the graph has."""
    regex = re.compile(re.escape(rule.tensor).replace(r"\{\}", r"(\d+)"))
    found = {int(m.group(1)) for name in signature if (m := regex.fullmatch(name))}
    if found != set(range(len(found))):
        raise AttnlabError(f"{path}: the {rule.graph} graph's {rule.tensor.format('i')} inputs are not numbered "
                           "0, 1, ... (export the checkpoint again)")
    return len(found)


def _dim(path: Path, signatures: dict[str, dict[str, list]], rule: Agree) -> int | None:
    """A static size the graph declares, or None (a named axis)."""
    dims = signatures[rule.graph].get(rule.tensor)
    if dims is None or rule.axis >= len(dims):
        raise AttnlabError(f"{path}: the {rule.graph} graph has no {rule.tensor} with an axis {rule.axis} (not this "
                           "model type's graph; export the checkpoint again)")
    return dims[rule.axis] if isinstance(dims[rule.axis], int) and dims[rule.axis] > 0 else None
