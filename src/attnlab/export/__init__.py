"""attnlab.export: trained models to ONNX, and running the export in ONNX Runtime.

    export_onnx(ckpt_dir, out_dir, opset=None) -> out_dir      (attnlab.export.onnx)
    load_runtime(out_dir), read_manifest(out_dir)              (attnlab.export.runtime, .manifest)

``onnx``, ``onnxscript`` and ``onnxruntime`` are optional dependencies
(``pip install attnlab[onnx]``), imported only when these functions run.
"""

from attnlab.export.manifest import read_manifest
from attnlab.export.onnx import export_onnx
from attnlab.export.runtime import load_runtime

__all__ = ["export_onnx", "load_runtime", "read_manifest"]
