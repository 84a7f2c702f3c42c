"""Export a trained attnlab checkpoint to an ONNX folder: one ``.onnx`` per graph (the
model's own forward/step traced: :mod:`attnlab.export.graphs`, :mod:`~attnlab.export.seq2seq`),
``weights.data`` (:mod:`attnlab.export.weights`), the tokenizer files and ``export.json``
(:mod:`attnlab.export.manifest`). The exporter is ``torch.onnx.export(..., dynamo=True)``,
TorchScript's the stated fallback, at opset 18 unless asked (docs/deploy.md says why).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import torch

import attnlab
from attnlab import models
from attnlab.errors import AttnlabError
from attnlab.export.graphs import Graph, Traced, gpt_graphs, one_graph, translator_graphs
from attnlab.export.manifest import FORMAT_VERSION, GRAPHS, MANIFEST, read_manifest
from attnlab.export.seq2seq import seq2seq_graphs
from attnlab.export.weights import WEIGHTS_FILE, share_weights
from attnlab.io import WriteError, file_digest, read_json, write_failure, write_json

__all__ = ["FORMAT_VERSION", "MANIFEST", "export_onnx", "read_manifest"]

DEFAULT_OPSET = 18
# what is not copied from the checkpoint into the export folder
_SKIPPED = ("*.safetensors", "*.pt", "*.pth", "*.bin", "*.ckpt", "*.onnx", "*.onnx.data", WEIGHTS_FILE, "trainer_state.json", MANIFEST)
_SKIPPED_DIRS = ("checkpoints", "checkpoint", "optimizer", "logs", "runs", "__pycache__", "viz", "explore")


def export_onnx(ckpt_dir: str | Path, out_dir: str | Path, *, opset: int | None = None, overwrite: bool = False) -> Path:
    """Export the checkpoint in ``ckpt_dir`` to an ONNX folder ``out_dir``; returns ``out_dir``.

    The folder is written whole or not at all (built next to it, then renamed). An
    existing non-empty ``out_dir`` is an error unless ``overwrite``.
    """
    ckpt_dir, out_dir = Path(ckpt_dir), Path(out_dir)
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if not 18 <= opset <= 23:
        raise AttnlabError(f"opset: expected an ONNX opset in [18, 23] (the dynamo exporter's range), got {opset}")
    model_type = _model_type(ckpt_dir)
    if model_type not in EXPORTERS:
        raise AttnlabError(
            f"{ckpt_dir}: a {model_type!r} model cannot be exported to ONNX (supported: {', '.join(sorted(EXPORTERS))})"
        )
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise AttnlabError(f"--out {out_dir}: folder exists and is not empty (pass overwrite=True / --overwrite to replace it)")
    model_class, graphs_of = EXPORTERS[model_type]
    to_trace, info = graphs_of(model_class.from_pretrained(ckpt_dir).eval())
    work = None
    try:  # a write that fails (disk full, ulimit -f, read-only) is one line; out_dir stays as it was
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        graphs = {g.name: _export_graph(g, work / f"{g.name}.onnx", opset) for g in to_trace}
        weights = share_weights(work, [g["file"] for g in graphs.values()])
        for g in graphs.values():  # as share_weights left them: what the runtime checks before loading
            g.update(file_digest(work / g["file"]))
        _copy_tokenizer(ckpt_dir, work)
        write_json(work / MANIFEST, {
            "format": "attnlab-onnx", "format_version": FORMAT_VERSION, "attnlab_version": attnlab.__version__,
            "torch_version": torch.__version__.split("+")[0], "model_type": model_type, "opset": opset,
            "graphs": graphs, "weights": weights, **info})
        old = None
        if out_dir.exists():  # moved aside, removed only after: no moment leaves neither
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            out_dir.rename(old / out_dir.name)
        work.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except (OSError, WriteError) as e:
        raise write_failure(out_dir, e) from None
    finally:
        if work is not None and work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return out_dir


def _export_graph(graph: Graph, path: Path, opset: int) -> dict:
    """Export with the dynamo exporter (TorchScript's as the stated fallback); the manifest entry."""
    dynamic = torch.export.Dim.DYNAMIC  # per input of forward(*inputs)
    dynamic_shapes = (tuple({d: dynamic for d in a} or None for _, a in graph.inputs.values()),)
    module = Traced(graph.model, graph.fn).eval()  # an inference graph: eval() applies to the model
    names, example = list(graph.inputs), tuple(t for t, _ in graph.inputs.values())
    axes = {**{n: a for n, (_, a) in graph.inputs.items()}, **graph.outputs}
    exporter, reason = ("torchscript", graph.torchscript) if graph.torchscript else ("dynamo", None)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            try:
                program = torch.onnx.export(module, example, input_names=names, output_names=list(graph.outputs),
                                            opset_version=opset, dynamo=True, dynamic_shapes=dynamic_shapes, verbose=False)
                for node in program.model.graph:  # the exporter's per-node stack traces: most of a file, and local paths
                    node.metadata_props.clear()
                program.save(str(path), external_data=True)  # no 2 GB limit; share_weights gathers the data
            except Exception as error:  # noqa: BLE001 - every exporter failure takes the fallback, stated
                exporter, reason = "torchscript", f"the dynamo exporter failed: {_root_cause(error)}"
        if exporter == "torchscript":
            torch.onnx.export(module, example, str(path), input_names=names, output_names=list(graph.outputs),
                              opset_version=opset, dynamo=False, dynamic_axes=axes)
        outputs = module(*example)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    entry = {"file": path.name, "exporter": exporter}
    entry |= {"fallback_reason": reason} if reason else {}
    for side, tensors in (("inputs", example), ("outputs", outputs)):
        entry[side] = [{"name": k, "dtype": str(t.dtype).removeprefix("torch."),
                        "shape": [axes[k].get(d, n) for d, n in enumerate(t.shape)]}
                       for k, t in zip(getattr(graph, side), tensors)]
    return entry


def _root_cause(error: BaseException) -> str:
    """The innermost exception's first line (the exporter wraps the real one in its own)."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {(lines[0] if lines else '')[:400]}"


def _model_type(ckpt_dir: Path) -> str:
    if not ckpt_dir.is_dir():
        raise AttnlabError(f"--ckpt {ckpt_dir}: checkpoint folder not found")
    config = ckpt_dir / "config.json"
    if not config.is_file():
        raise AttnlabError(f"--ckpt {ckpt_dir}: no config.json (not a model checkpoint folder)")
    model_type = read_json(config).get("model_type")
    return "gpt2" if model_type is None and (ckpt_dir / "vocab.json").is_file() else str(model_type)


def _copy_tokenizer(ckpt_dir: Path, out_dir: Path) -> None:
    """Everything of the checkpoint but weights and training state: tokenizer files, config.json, ..."""
    for item in ckpt_dir.iterdir():
        if any(item.match(p) for p in _SKIPPED) or item.name.startswith("."):
            continue
        if item.is_dir():
            if item.name not in _SKIPPED_DIRS and not any(item.rglob("*.safetensors")):
                shutil.copytree(item, out_dir / item.name)
        elif item.stat().st_size < 64 << 20:
            shutil.copy2(item, out_dir / item.name)


# model type -> its class, and the function that lists its graphs
EXPORTERS = {"gpt2": (models.GPT, gpt_graphs), "seq2seq": (models.Seq2Seq, seq2seq_graphs),
             "transformer": (models.Transformer, translator_graphs),
             "bert": (models.BERT, one_graph), "vit": (models.ViT, one_graph),
             "gat": (models.GAT, one_graph), "han": (models.HAN, one_graph)}
assert set(EXPORTERS) == set(GRAPHS)
