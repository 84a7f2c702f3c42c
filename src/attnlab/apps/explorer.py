"""``attnlab explore``: the explorer page of any checkpoint, written once or served live.

Which checkpoints can be shown side by side (:func:`check_comparable`: the same task; a
Transformer and an RNN translator are both translators) and what a live page takes as input
(:func:`input_kind`: text, an image, or nothing for a graph) are decided here, from the
apps' own declarations (``INPUT_KIND`` in an app module; text when it declares none).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from attnlab.apps import app_for, attentions_for, model_type
from attnlab.errors import AttnlabError

PAGE_NAME = "explorer.html"  # the file written into an --out folder
TRANSLATORS = {"transformer", "seq2seq"}


def input_kind(ckpt: str | Path) -> str:
    """What the live page of this checkpoint takes: ``text``, ``image`` or ``graph``."""
    return getattr(app_for(ckpt), "INPUT_KIND", "text")


def check_comparable(ckpt: str | Path, other: str | Path) -> None:
    """Two checkpoints go side by side when they do the same task."""
    first, second = model_type(ckpt), model_type(other)
    if first != second and not {first, second} <= TRANSLATORS:
        raise AttnlabError(f"--compare {other}: holds a {second!r} model, --ckpt a {first!r}: "
                           "compare two checkpoints of the same task")


def page_path(out: str | Path) -> Path:
    """``--out``: an ``.html`` file, or a folder (existing, or named without a suffix) that
    gets ``explorer.html``."""
    out = Path(out)
    return out / PAGE_NAME if out.is_dir() or not out.suffix else out


def write(ckpt: str | Path, inputs: list[str], out: str | Path, *, compare: str | Path | None = None,
          device: str = "cpu") -> Path:
    """The self-contained explorer page of ``ckpt`` on ``inputs`` (and ``compare`` beside it)."""
    from attnlab.viz.explorer import write_page

    items = [attentions_for(ckpt, inputs, device=device)]
    others = None
    if compare is not None:
        check_comparable(ckpt, compare)
        others = [attentions_for(compare, inputs, device=device)]
    return write_page(items, page_path(out), title=f"attnlab explorer: {ckpt}", compare=others,
                      compare_title=None if compare is None else str(compare))


def serve(ckpt: str | Path, inputs: list[str], *, port: int, device: str = "cpu",
          ready: Callable[[str], None] | None = None) -> None:
    """Serve the explorer of ``ckpt`` on 127.0.0.1 with live inference until Ctrl-C."""
    from attnlab.viz.explorer import serve as serve_page

    if not 0 <= port < 65536:
        raise AttnlabError(f"--port: expected 0..65535, got {port}")
    items = [attentions_for(ckpt, inputs, device=device)]
    app, kind = app_for(ckpt), input_kind(ckpt)
    loaded = None if kind == "graph" else app.load(ckpt, device=device)

    def infer(request: dict):
        if kind == "image":
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "upload"
                path.write_bytes(request["image_bytes"])
                return app.attentions(loaded, [str(path)])
        if kind == "graph":
            raise AttnlabError("live input is not supported for graph models: the page shows the trained graph")
        return app.attentions(loaded, [request["text"]])

    serve_page(infer, items=items, title=f"attnlab explorer: {ckpt}", input_kind=kind, port=port, ready=ready)
