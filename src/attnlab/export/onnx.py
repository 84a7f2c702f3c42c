"""Export a trained attnlab checkpoint to an ONNX folder: one ``.onnx`` per graph (the
model's own forward/step traced: :mod:`attnlab.export.graphs`, :mod:`~attnlab.export.seq2seq`),
``weights.data`` (every distinct weight once, :mod:`attnlab.export.weights`), the tokenizer
files and ``export.json`` (:mod:`attnlab.export.manifest`); docs/deploy.md lists the graphs.

The exporter is PyTorch's recommended one, ``torch.onnx.export(..., dynamo=True)``; a
graph it cannot export falls back to the TorchScript exporter and ``export.json`` says
which and why. The opset is 18 unless asked: the exporter's own op library is written
against 18 (no version conversion), and ONNX Runtime has run it since 1.14.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import Tensor

import attnlab
from attnlab.errors import AttnlabError
from attnlab.export.manifest import FORMAT_VERSION, GRAPHS, MANIFEST, read_manifest
from attnlab.export.spec import Graph
from attnlab.export.weights import WEIGHTS_FILE, file_digest, share_weights
from attnlab.io import WriteError, read_json, write_failure, write_json

__all__ = ["FORMAT_VERSION", "MANIFEST", "export_onnx", "read_manifest"]

DEFAULT_OPSET = 18
# what is not copied from the checkpoint into the export folder
_SKIPPED = ("*.safetensors", "*.pt", "*.pth", "*.bin", "*.ckpt", "*.onnx", "*.onnx.data", WEIGHTS_FILE, "trainer_state.json", MANIFEST)
_SKIPPED_DIRS = ("checkpoints", "checkpoint", "optimizer", "logs", "runs", "__pycache__", "viz", "explore")
DYNAMIC = torch.export.Dim.DYNAMIC


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
    model_class, graphs = EXPORTERS[model_type]
    model = getattr(importlib.import_module("attnlab.models"), model_class).from_pretrained(ckpt_dir).eval()
    module, function = graphs.split(".")
    exported = getattr(importlib.import_module(f"attnlab.export.{module}"), function)(model)
    try:  # a write that fails (disk full, ulimit -f, read-only) is one line; out_dir stays as it was
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as e:
        raise write_failure(out_dir, e) from None
    try:
        graphs = {}
        for graph in exported.graphs:
            graphs[graph.name] = _export_graph(graph, work / f"{graph.name}.onnx", opset)
        weights = share_weights(work, [g["file"] for g in graphs.values()])
        for g in graphs.values():  # as share_weights left them: what the runtime checks before loading
            g.update(file_digest(work / g["file"]))
        _copy_tokenizer(ckpt_dir, work)
        write_json(work / MANIFEST, {
            "format": "attnlab-onnx", "format_version": FORMAT_VERSION, "attnlab_version": attnlab.__version__,
            "torch_version": torch.__version__.split("+")[0], "model_type": model_type, "opset": opset,
            "graphs": graphs, "weights": weights, **exported.info})
        _swap_in(work, out_dir)
    except (OSError, SafetensorError, WriteError) as e:
        raise write_failure(out_dir, e) from None
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return out_dir


def _swap_in(work: Path, out_dir: Path) -> None:
    """Rename the finished ``work`` folder onto ``out_dir``; an existing ``out_dir`` is moved
    aside first and removed only after, so no moment leaves neither."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        out_dir.rename(old / out_dir.name)
    work.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- one graph ------------------------------------------------------------------------
def _export_graph(graph: Graph, path: Path, opset: int) -> dict:
    """Export with the dynamo exporter (TorchScript's as the stated fallback); the manifest entry."""
    dynamic_shapes = (tuple({d: DYNAMIC for d in graph.axes.get(name, {})} or None for name in graph.inputs),)  # forward(*inputs)
    exporter, reason = graph.exporter, graph.reason
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            try:
                program = torch.onnx.export(graph.module, graph.example, input_names=graph.inputs, output_names=graph.outputs,
                                            opset_version=opset, dynamo=True, dynamic_shapes=dynamic_shapes, verbose=False)
                for node in program.model.graph:  # the exporter's per-node stack traces: most of a file, and local paths
                    node.metadata_props.clear()
                program.save(str(path), external_data=True)  # no 2 GB limit; share_weights gathers the data
            except Exception as error:  # noqa: BLE001 - every exporter failure takes the fallback, stated
                exporter, reason = "torchscript", f"the dynamo exporter failed: {_root_cause(error)}"
        if exporter == "torchscript":
            torch.onnx.export(graph.module, graph.example, str(path), input_names=graph.inputs, output_names=graph.outputs,
                              opset_version=opset, dynamo=False, dynamic_axes={k: dict(v) for k, v in graph.axes.items()})
        outputs = graph.module(*graph.example)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    described = {side: [_describe(name, t, graph.axes.get(name, {})) for name, t in zip(names, tensors)]
                 for side, names, tensors in (("inputs", graph.inputs, graph.example), ("outputs", graph.outputs, outputs))}
    return {"file": path.name, "exporter": exporter, **described, **({"fallback_reason": reason} if reason else {})}


def _root_cause(error: BaseException) -> str:
    """The innermost exception's first line (the exporter wraps the real one in its own)."""
    while error.__cause__ is not None:
        error = error.__cause__
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {(lines[0] if lines else '')[:400]}"


def _describe(name: str, t: Tensor, axes: dict[int, str]) -> dict:
    return {"name": name, "dtype": str(t.dtype).removeprefix("torch."),
            "shape": [axes.get(d, int(size)) for d, size in enumerate(t.shape)]}


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


# model type -> its class in attnlab.models, and the function of attnlab.export.<module> that lists its graphs
EXPORTERS = {"gpt2": ("GPT", "graphs.gpt_graphs"), "transformer": ("Transformer", "graphs.translator_graphs"),
             "seq2seq": ("Seq2Seq", "seq2seq.seq2seq_graphs"), "bert": ("BERT", "graphs.one_graph"),
             "vit": ("ViT", "graphs.one_graph"), "gat": ("GAT", "graphs.one_graph"), "han": ("HAN", "graphs.one_graph")}
assert set(EXPORTERS) == set(GRAPHS)
