"""Opening an export folder: what is checked before ONNX Runtime gets a graph, and before a
runtime allocates anything from ``export.json``'s numbers.

    1. export.json's schema (:mod:`attnlab.export.manifest`, on reading it)
    2. every file it lists -- weights.data and each graph -- resolves inside the folder and
       has the size and SHA-256 the export recorded (:func:`attnlab.export.weights.check_file`)
    3. each graph, parsed without its weights: every tensor stored outside it points into
       the checked weights file, within its size (a graph cannot send ONNX Runtime to
       another file)
    4. the config agrees with what the graphs declare: layers, heads and head width with
       the cache inputs ``past.i.key (B, H, P, Dh)``; the vocabulary with the logits'
       last axis; token ids inside it; image size, feature and class counts, meta-paths
       with the graph's inputs and outputs

A disagreement is one line naming the field, what the graph says and what the config says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.export.weights import check_file

Signature = dict[str, dict[str, list]]  # {"inputs"|"outputs": {tensor name: dims (int, or a str for a named axis)}}


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
        signatures[name] = {side: {v.name: _dims(v) for v in getattr(graph, side)} for side in ("input", "output")}
    ConfigCheck(directory / "export.json", manifest["config"], signatures).run(manifest["model_type"])
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


class ConfigCheck:
    """The config of ``export.json`` against the graphs' declared inputs and outputs."""

    def __init__(self, path: Path, config: dict, signatures: dict[str, Signature]):
        self.path, self.config, self.signatures = path, config, signatures

    def run(self, model_type: str) -> None:
        getattr(self, model_type)()

    # what each model type's config must agree with
    def gpt2(self) -> None:
        self.cache("decode", "past")
        self.equal("vocab_size", self.dim("decode", "output", "logits", 2), "the last axis of decode's logits")
        self.token_id("eos_token_id", "vocab_size")

    def transformer(self) -> None:
        self.cache("decoder", "past")
        self.cache("decoder", "cross")
        self.translator()

    def seq2seq(self) -> None:
        inputs = self.signatures["decoder"]["input"]
        lstm = "c" in inputs
        if (self.config["cell"] == "lstm") != lstm:
            self.fail("cell", f"{'lstm' if lstm else 'gru'!r} (the decoder graph {'takes' if lstm else 'has no'} a cell state c)",
                      repr(self.config["cell"]))
        self.equal("feed_dim", self.dim("decoder", "input", "feed", 1), "axis 1 of the decoder's feed input")
        self.translator()

    def translator(self) -> None:
        self.equal("tgt_vocab_size", self.dim("decoder", "output", "log_probs", 2), "the last axis of the decoder's log_probs")
        for field in ("bos_id", "eos_id"):
            self.token_id(field, "tgt_vocab_size")
        self.token_id("pad_id", "src_vocab_size")

    def bert(self) -> None:
        head = self.config["head"]
        needed = {"pretraining": "mlm_logits", "mlm": "mlm_logits", "classifier": "logits"}.get(head)
        if needed and needed not in self.signatures["model"]["output"]:
            self.fail("head", f"a head the graph computes (it has no {needed} output)", repr(head))
        if "mlm_logits" in self.signatures["model"]["output"]:
            self.equal("vocab_size", self.dim("model", "output", "mlm_logits", 2), "the last axis of mlm_logits")
        self.token_id("pad_token_id", "vocab_size")
        self.labels()

    def vit(self) -> None:
        for field, axis in (("num_channels", 1), ("image_size", 2), ("image_size", 3)):
            self.equal(field, self.dim("model", "input", "pixel_values", axis), f"axis {axis} of pixel_values")
        if self.config["labels"] and "logits" not in self.signatures["model"]["output"]:
            self.fail("labels", "[] (the graph has no classifier: no logits output)", _short(self.config["labels"]))
        self.labels()

    def gat(self) -> None:
        self.equal("in_dim", self.dim("model", "input", "x", 1), "axis 1 of x (N, F)")
        self.equal("num_classes", self.dim("model", "output", "logits", 1), "axis 1 of logits (N, C)")

    def han(self) -> None:
        self.gat()
        paths = self.numbered("model", "edge_index.{}")
        self.equal("num_metapaths", paths, "the graph's edge_index.p inputs")

    # the checks
    def cache(self, graph: str, prefix: str) -> None:
        """``num_layers`` = the number of ``prefix.i.key`` inputs; their dims 1 and 3 = heads, head width."""
        layers = self.numbered(graph, prefix + ".{}.key")
        self.equal("num_layers", layers, f"the {graph} graph's {prefix}.i.key inputs")
        for field, axis in (("num_heads", 1), ("head_dim", 3)):
            self.equal(field, self.dim(graph, "input", f"{prefix}.0.key", axis), f"axis {axis} of {prefix}.0.key (B, H, P, Dh)")

    def labels(self) -> None:
        """With a classifier, as many ``labels`` as the logits have classes."""
        labels = self.config["labels"]
        if "logits" in self.signatures["model"]["output"] and labels:
            classes = self.dim("model", "output", "logits", 1)
            if classes is not None and len(labels) != classes:
                self.fail("labels", f"{classes} labels (axis 1 of logits)", f"{len(labels)}: {_short(labels)}")

    def numbered(self, graph: str, pattern: str) -> int:
        """How many inputs ``pattern.format(0)``, ``pattern.format(1)``, ... the graph has."""
        regex = re.compile(re.escape(pattern).replace(r"\{\}", r"(\d+)"))
        found = {int(m.group(1)) for name in self.signatures[graph]["input"] if (m := regex.fullmatch(name))}
        if found != set(range(len(found))):
            raise AttnlabError(f"{self.path}: the {graph} graph's {pattern.format('i')} inputs are not numbered "
                               "0, 1, ... (export the checkpoint again)")
        return len(found)

    def dim(self, graph: str, side: str, name: str, axis: int) -> int | None:
        """A static size the graph declares, or None (a named axis, or no such tensor)."""
        dims = self.signatures[graph][side].get(name)
        if dims is None or axis >= len(dims):
            raise AttnlabError(f"{self.path}: the {graph} graph has no {side} {name} with an axis {axis} (not this "
                               "model type's graph; export the checkpoint again)")
        return dims[axis] if isinstance(dims[axis], int) and dims[axis] > 0 else None

    def equal(self, field: str, declared: int | None, where: str, value: object = ...) -> None:
        value = self.config[field] if value is ... else value
        if declared is not None and value != declared:
            self.fail(field, f"{declared} ({where})", value)

    def token_id(self, field: str, vocab: str) -> None:
        value, size = self.config[field], self.config[vocab]
        if value is not None and not 0 <= value < size:
            self.fail(field, f"an id in [0, {size}) (config.{vocab})", value)

    def fail(self, field: str, expected: str, got: object) -> None:
        raise AttnlabError(f"{self.path}: config.{field}: expected {expected}, got {got}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
