"""attnlab.export: trained models to ONNX, and running the export in ONNX Runtime.

    export_onnx(ckpt_dir, out_dir, opset=None) -> out_dir      (attnlab.export.onnx)
    load_runtime(out_dir), read_manifest(out_dir)              (attnlab.export.runtime, .manifest)

``onnx``, ``onnxscript`` and ``onnxruntime`` are optional dependencies
(``pip install attnlab[onnx]``), imported only when these functions run.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["export_onnx", "load_runtime", "read_manifest"]
_MODULES = {"export_onnx": "onnx", "load_runtime": "runtime", "read_manifest": "manifest"}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module 'attnlab.export' has no attribute {name!r}")
    return getattr(importlib.import_module(f"attnlab.export.{_MODULES[name]}"), name)
