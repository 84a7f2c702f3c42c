"""One weights file shared by every graph of an export folder, and the checks of the files.

The exporter writes each graph with its own copy of the weights (GPT's ``prefill`` and
``decode`` both hold the model). :func:`share_weights` moves every initializer of at
least ``MIN_BYTES`` into ``weights.data``, once per distinct content (matched by bytes and
element type, not names: two graphs name one parameter differently), and points each
graph's initializer into it with ONNX's external-data fields (``location``, ``offset``,
``length``). Offsets are aligned to ALIGN bytes (MAP_ALIGN for tensors of MAP_BYTES or
more, as ``onnx``'s own writer does), so ONNX Runtime memory-maps the file: one copy of
the weights however many sessions load the graphs, as long as each uses them as stored
(constant transposes are folded at export; the runtime turns off per-session repacking
when a folder has several graphs). :func:`check_file` verifies every file against the
manifest's size and SHA-256 before a runtime loads it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.io import file_digest

__all__ = ["WEIGHTS_FILE", "check_file", "file_digest", "inside", "share_weights"]

WEIGHTS_FILE = "weights.data"
MIN_BYTES = 1024  # smaller tensors (shapes, scalars, norms of tiny models) stay in the graph
ALIGN, MAP_ALIGN, MAP_BYTES = 64, 1 << 16, 1 << 20


def share_weights(folder: Path, graph_files: list[str]) -> dict:
    """Rewrite ``graph_files`` in ``folder`` so that their large initializers live once in
    ``folder / WEIGHTS_FILE``; the manifest entry ``{"file", "bytes", "sha256", "tensors"}``.
    Graphs may arrive with their own external data (``<graph>.onnx.data``): it is read and
    removed."""
    import onnx

    offsets: dict[tuple[int, bytes], int] = {}  # (element type, content digest) -> offset
    digest = hashlib.sha256()
    with open(folder / WEIGHTS_FILE, "wb") as out:
        for name in graph_files:
            path = folder / name
            model = onnx.load(str(path), load_external_data=True)
            for tensor in model.graph.initializer:
                data = _tensor_bytes(tensor)
                if len(data) < MIN_BYTES:
                    continue
                key = (tensor.data_type, hashlib.sha256(data).digest())
                if key not in offsets:
                    offsets[key] = _pad_to(out, digest, MAP_ALIGN if len(data) >= MAP_BYTES else ALIGN)
                    out.write(data)
                    digest.update(data)
                _point_to_file(tensor, offsets[key], len(data))
            for leftover in folder.glob(f"{name}*.data"):  # the exporter's per-graph file
                leftover.unlink()
            onnx.save_model(model, str(path))
        size = out.tell()
    return {"file": WEIGHTS_FILE, "bytes": size, "sha256": digest.hexdigest(), "tensors": len(offsets)}


def _tensor_bytes(tensor) -> bytes:
    from onnx import numpy_helper

    if tensor.HasField("raw_data"):
        return tensor.raw_data
    return numpy_helper.to_array(tensor).tobytes()


def _pad_to(out, digest, align: int) -> int:
    """Zero-pad ``out`` to a multiple of ``align``; the new offset."""
    pad = -out.tell() % align
    out.write(b"\0" * pad)
    digest.update(b"\0" * pad)
    return out.tell()


def _point_to_file(tensor, offset: int, length: int) -> None:
    from onnx import TensorProto

    for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
        tensor.ClearField(field)
    del tensor.external_data[:]
    for key, value in (("location", WEIGHTS_FILE), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.data_location = TensorProto.EXTERNAL


def inside(folder: Path, name: str, field: str) -> Path:
    """``folder / name`` (the ``file`` field ``field``, a plain name by the schema), refused
    when it is a link that leads out of the folder: only the link is read, never its target,
    and the message says nothing about what is outside."""
    path = folder / name
    try:
        resolved, root = path.resolve(), folder.resolve()
    except (OSError, RuntimeError):  # a link loop
        resolved, root = None, None
    if resolved is None or resolved.parent != root:
        raise AttnlabError(f"{path}: {field} must name a file inside the export folder; this one is a link that "
                           "leads out of it (refused, nothing read)")
    return path


def check_file(folder: Path, entry: dict, field: str, what: str) -> Path:
    """``folder / entry["file"]``, confined to the folder (:func:`inside`) and checked against
    the manifest's ``bytes`` and ``sha256`` before anything reads it for use: a missing,
    truncated or altered file is one line naming it."""
    path = inside(folder, entry["file"], field)
    if not path.is_file():
        raise AttnlabError(f"{path}: the export's {what} is missing (export the checkpoint again)")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise AttnlabError(f"{path}: {size} bytes, the export wrote {entry['bytes']} (truncated or replaced; export again)")
    if file_digest(path)["sha256"] != entry["sha256"]:
        raise AttnlabError(f"{path}: contents differ from what the export wrote (SHA-256 mismatch; export again)")
    return path
