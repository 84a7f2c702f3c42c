"""attnlab.export: trained models to ONNX, and running the export in ONNX Runtime.

    export_onnx(ckpt_dir, out_dir, opset=None) -> out_dir      (attnlab.export.onnx)
    load_runtime(out_dir)                                     (attnlab.export.runtime)

``onnx``, ``onnxscript`` and ``onnxruntime`` are optional dependencies
(``pip install attnlab[onnx]``), imported only when these functions run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_onnx", "load_runtime", "read_manifest"]


def __getattr__(name: str) -> Any:
    if name in ("export_onnx", "read_manifest"):
        from attnlab.export import onnx

        return getattr(onnx, name)
    if name == "load_runtime":
        from attnlab.export.runtime import load_runtime

        return load_runtime
    raise AttributeError(f"module 'attnlab.export' has no attribute {name!r}")
