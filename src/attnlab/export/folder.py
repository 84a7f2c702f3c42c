"""Opening an export folder: after export.json's schema (:mod:`attnlab.export.manifest`),
before ONNX Runtime gets a graph or a runtime allocates anything from the config --

    1. every file listed resolves inside the folder and has its recorded size and SHA-256
    2. each graph, parsed without its weights, reads external data only from the checked
       weights file, within its size
    3. the config agrees with what the graphs declare (AGREE, NEEDS, TOKEN_IDS)

-- each disagreement one line naming the field, what the graph says and what the config says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from attnlab.errors import AttnlabError
from attnlab.export.manifest import refuse
from attnlab.io import file_digest


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
    """The checks of the module docstring for a manifest that passed its schema; the graph
    files by graph name, safe to hand to ONNX Runtime."""
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


def check_file(folder: Path, entry: dict, field: str, what: str) -> Path:
    """``folder / entry["file"]`` (the ``file`` field ``field``, a plain name by the schema),
    refused when it is a link that leads out of the folder (only the link is read, never its
    target, and the message says nothing about what is outside), then checked against the
    manifest's ``bytes`` and ``sha256`` before anything reads it for use: a missing,
    truncated or altered file is one line naming it."""
    path = folder / entry["file"]
    try:
        resolved, root = path.resolve(), folder.resolve()
    except (OSError, RuntimeError):  # a link loop
        resolved, root = None, None
    if resolved is None or resolved.parent != root:
        raise AttnlabError(f"{path}: {field} must name a file inside the export folder; this one is a link that "
                           "leads out of it (refused, nothing read)")
    if not path.is_file():
        raise AttnlabError(f"{path}: the export's {what} is missing (export the checkpoint again)")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise AttnlabError(f"{path}: {size} bytes, the export wrote {entry['bytes']} (truncated or replaced; export again)")
    if file_digest(path)["sha256"] != entry["sha256"]:
        raise AttnlabError(f"{path}: contents differ from what the export wrote (SHA-256 mismatch; export again)")
    return path


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
        refuse(path, f"config.{field}", expected, got)

    for field, test, graph, tensor, has in NEEDS.get(model_type, []):
        if test(config[field]) and (tensor in signatures[graph]) != has:
            does = "has no" if has else "has a"
            fail(field, f"a setting the {graph} graph computes (it {does} {tensor})", config[field])
    for rule in AGREE[model_type]:
        if rule.optional and rule.tensor not in signatures[rule.graph]:
            continue
        declared = _declared(path, signatures[rule.graph], rule)
        value = config[rule.field]
        if isinstance(value, list) and not value:  # no labels: nothing to agree with
            continue
        size = len(value) if isinstance(value, list) else value
        if declared is not None and size != declared:
            fail(rule.field, f"{declared} ({rule.where})", value)
    for field, vocab in TOKEN_IDS.get(model_type, []):
        value, size = config[field], config[vocab]
        if value is not None and not 0 <= value < size:
            fail(field, f"an id in [0, {size}) (config.{vocab})", value)


def _declared(path: Path, signature: dict[str, list], rule: Agree) -> int | None:
    """How many inputs ``rule.tensor.format(0)``, ``.format(1)``, ... the graph has (``axis``
    None), or the static size it declares along ``axis`` (None: a named axis)."""
    if rule.axis is None:
        return sum(rule.tensor.format(i) in signature for i in range(len(signature)))
    dims = signature.get(rule.tensor)
    if dims is None or rule.axis >= len(dims):
        raise AttnlabError(f"{path}: the {rule.graph} graph has no {rule.tensor} with an axis {rule.axis} (not this "
                           "model type's graph; export the checkpoint again)")
    return dims[rule.axis] if isinstance(dims[rule.axis], int) and dims[rule.axis] > 0 else None
