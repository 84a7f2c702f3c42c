"""attnlab.apps: one module per task, each a Python API a user can call.

    translate   Transformer and RNN translators     TranslateSettings -> train / evaluate / attentions
    lm          GPT language models                 LMSettings -> train / complete / attentions
    bert        BERT pre-training, fine-tuning      MLMSettings, ClassifySettings -> pretrain / finetune
    vit         Vision Transformer classifiers      ViTSettings -> train / classify / attentions
    graph       GAT and HAN node classifiers        GraphSettings -> train / attentions
    demo        the main job: train, evaluate and explain a translator
    compare     attention variants side by side on one task
    showcase    every mechanism on one toy query

Every app's ``attentions(loaded, inputs)`` returns an :class:`~attnlab.attention.maps.Explained`;
:func:`attentions_for` finds the app of a checkpoint folder by its ``model_type`` and runs it —
the seam ``attnlab viz`` and ``attnlab explore`` read. ``apps.explain`` (``attnlab explain``)
measures which explanation of a prediction is faithful.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from attnlab.errors import AttnlabError

if TYPE_CHECKING:
    from attnlab.attention.maps import Explained

# model_type in config.json -> the app that loads and explains it
APPS: dict[str, str] = {
    "transformer": "translate",
    "seq2seq": "translate",
    "gpt2": "lm",
    "bert": "bert",
    "vit": "vit",
    "gat": "graph",
    "han": "graph",
}


def model_type(ckpt: str | Path) -> str:
    """The ``model_type`` of a checkpoint folder (one clear error when it is not one)."""
    from attnlab.apps.common import check_ckpt
    from attnlab.io import CONFIG_FILE, read_json  # torch: only when a checkpoint is read

    ckpt = check_ckpt(ckpt)
    if not (ckpt / CONFIG_FILE).is_file():
        raise AttnlabError(f"--ckpt {ckpt}: no {CONFIG_FILE}: not a checkpoint folder")
    config = read_json(ckpt / CONFIG_FILE)
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind not in APPS:
        raise AttnlabError(f"--ckpt {ckpt / CONFIG_FILE}: model_type {kind!r} is not one attnlab knows ({sorted(APPS)})")
    return kind


def app_for(ckpt: str | Path):
    """The app module of the checkpoint in ``ckpt``."""
    return importlib.import_module(f"attnlab.apps.{APPS[model_type(ckpt)]}")


def attentions_for(ckpt: str | Path, inputs: list[str], device: str = "cpu") -> Explained:
    """Load the checkpoint with its app and return the attention on ``inputs`` (the
    app's default example when empty). An app whose inputs are part of what it loads (a
    graph: the user's CSV files are the graph) says so with ``attentions_of_checkpoint``."""
    app = app_for(ckpt)
    whole = getattr(app, "attentions_of_checkpoint", None)
    if whole is not None:
        return whole(ckpt, list(inputs), device=device)
    return app.attentions(app.load(ckpt, device=device), list(inputs))
