"""One weights file shared by every graph of an export folder.

:func:`share_weights` moves every initializer of at least ``MIN_BYTES`` into
``weights.data``, once per distinct content (matched by bytes and element type, not names:
two graphs name one parameter differently), with ONNX's external-data fields (``location``,
``offset``, ``length``) at ALIGN-ed offsets (MAP_ALIGN from MAP_BYTES up, as ``onnx``'s own
writer does), so ONNX Runtime memory-maps one copy for every session (docs/deploy.md).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from attnlab.io import file_digest

__all__ = ["WEIGHTS_FILE", "file_digest", "share_weights"]

WEIGHTS_FILE = "weights.data"
MIN_BYTES = 1024  # smaller tensors (shapes, scalars, norms of tiny models) stay in the graph
ALIGN, MAP_ALIGN, MAP_BYTES = 64, 1 << 16, 1 << 20


def share_weights(folder: Path, graph_files: list[str]) -> dict:
    """Rewrite ``graph_files`` in ``folder`` so that their large initializers live once in
    ``folder / WEIGHTS_FILE``; the manifest entry ``{"file", "bytes", "sha256", "tensors"}``.
    Graphs may arrive with their own external data (``<graph>.onnx.data``): it is read and
    removed."""
    import onnx
    from onnx.external_data_helper import set_external_data
    from onnx.numpy_helper import from_array, to_array

    offsets: dict[tuple[int, bytes], int] = {}  # (element type, content digest) -> offset
    with open(folder / WEIGHTS_FILE, "wb") as out:
        for name in graph_files:
            path = folder / name
            model = onnx.load(str(path), load_external_data=True)
            for tensor in model.graph.initializer:
                if not tensor.HasField("raw_data"):  # typed fields (float_data, ...) as raw bytes
                    tensor.CopyFrom(from_array(to_array(tensor), tensor.name))
                data = tensor.raw_data
                if len(data) < MIN_BYTES:
                    continue
                key = (tensor.data_type, hashlib.sha256(data).digest())
                if key not in offsets:
                    pad = -out.tell() % (MAP_ALIGN if len(data) >= MAP_BYTES else ALIGN)
                    out.write(b"\0" * pad + data)
                    offsets[key] = out.tell() - len(data)
                set_external_data(tensor, WEIGHTS_FILE, offsets[key], len(data))
                tensor.ClearField("raw_data")
            for leftover in folder.glob(f"{name}*.data"):  # the exporter's per-graph file
                leftover.unlink()
            onnx.save_model(model, str(path))
    return {"file": WEIGHTS_FILE, **file_digest(folder / WEIGHTS_FILE), "tensors": len(offsets)}
