"""attnlab.viz: attention pictures (heatmaps, HTML reports) and the ``attnlab viz`` registry.

``attnlab viz --ckpt DIR [INPUT ...] [--out PATH]`` reads the checkpoint's
``config.json``, looks its ``model_type`` up in :data:`VIEWERS` and calls that viewer.
A viewer is ``"module:function"`` (imported only when used) with the signature::

    function(ckpt: Path, inputs: list[str], out: Path) -> Path     # the file it wrote

``inputs`` are the positional arguments of ``attnlab viz`` (sentences, image paths, ...);
a viewer chooses a default when they are empty. To add a model type, add one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.io import read_json

VIEWERS: dict[str, str] = {
    "transformer": "attnlab.translation.explain:view_translator",
    "seq2seq": "attnlab.translation.explain:view_translator",
    "bert": "attnlab.cli.bert:view_bert",
    "vit": "attnlab.cli.vit:view_vit",
    "gat": "attnlab.cli.train_graph:view_gat",
}


def find_viewer(model_type: str) -> Callable[[Path, list[str], Path], Path]:
    if model_type not in VIEWERS:
        raise AttnlabError(
            f"attnlab viz: no viewer for model_type {model_type!r}; supported: {sorted(VIEWERS)}"
        )
    module, function = VIEWERS[model_type].split(":")
    return getattr(importlib.import_module(module), function)


def visualize(ckpt: str | Path, inputs: list[str], out: str | Path) -> Path:
    """Draw the attention of the model in ``ckpt`` on ``inputs``; return the written file."""
    ckpt = Path(ckpt)
    if not ckpt.is_dir():
        raise AttnlabError(f"--ckpt {ckpt}: checkpoint folder not found")
    config = read_json(ckpt / "config.json")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    return find_viewer(str(model_type))(ckpt, list(inputs), Path(out))
