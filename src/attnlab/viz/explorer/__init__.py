"""The attention explorer: one interactive, offline HTML page for every model type.

    write_page(items, out, *, title, compare=None, compare_title=None) -> Path
        one self-contained file (no network): head, model, matrix, alignment, image,
        graph and statistics views, compare, PNG/SVG export, state in the URL
    serve(infer, *, items, title, input_kind, host="127.0.0.1", port=0, ...) -> None
        the same page from a local server with live inference

Both read only :class:`~attnlab.attention.maps.Explained` (the apps' ``attentions`` seam).
How the page packs and draws attention: ``pack.py`` and ``static/explorer-*.js`` (five parts:
data, drawing, token views, image and graph views, the app).
"""

from attnlab.viz.explorer.page import write_page
from attnlab.viz.explorer.server import serve

__all__ = ["write_page", "serve"]
