"""attnlab: the neural attention family and the models built on it, readable, tested and fast.

    attnlab.explain(model_or_ckpt, inputs)  which explanation of each prediction is faithful,
                                            which heads matter (shows itself in a notebook)
    attnlab.explore(ckpt_or_model, inputs)  the attention explorer, inline in a notebook

Both are imported on first use (module ``__getattr__``), so ``import attnlab`` and
``attnlab --version`` stay light (no torch).
"""

from attnlab.errors import AttnlabError

__version__ = "0.1.0"
__all__ = ["AttnlabError", "__version__", "explain", "explore"]


def __getattr__(name: str):
    if name == "explain":
        import attnlab.explain  # a callable package: attnlab.explain(model_or_ckpt, inputs, ...)

        return attnlab.explain
    if name == "explore":
        from attnlab.apps.explain import explore

        return explore
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")
