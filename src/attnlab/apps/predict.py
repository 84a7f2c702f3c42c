"""Inference for every checkpoint ``attnlab train`` writes, by its model type.

    classify(ckpt, inputs)      a BERT classifier (texts) or a ViT (image files): the top labels
    predict_nodes(ckpt, inputs) a GAT or HAN: every node's class (its embedded graph, or the
                                user's edges and nodes CSV files)

(``generate``, ``fill-mask`` and ``translate`` are the GPT, BERT-MLM and translator apps' own.)
"""

from __future__ import annotations

from pathlib import Path

from attnlab.apps import model_type
from attnlab.errors import AttnlabError

OTHER_COMMANDS = {"gpt2": "generate", "transformer": "translate", "seq2seq": "translate", "gat": "predict",
                  "han": "predict", "bert": "fill-mask", "vit": "classify"}


def _wrong(ckpt: str | Path, kind: str, what: str) -> AttnlabError:
    return AttnlabError(f"--ckpt {ckpt}: holds a {kind!r} model, {what}; use `attnlab {OTHER_COMMANDS[kind]}` "
                        "for it")


def classify(ckpt: str | Path, inputs: list[str], top_k: int = 3, device: str = "cpu") -> list[list[tuple[str, float]]]:
    """For each input, the ``top_k`` labels and their probabilities: texts for a BERT
    classifier, image files for a ViT."""
    from attnlab.apps.common import at_least

    at_least(1, top_k=top_k)
    kind = model_type(ckpt)
    if kind == "vit":
        from attnlab.apps import vit

        return vit.classify(vit.load(ckpt, device=device), inputs, top_k)
    if kind == "bert":
        from attnlab.apps import bert

        return bert.classify(bert.load(ckpt, device=device), inputs, top_k)
    raise _wrong(ckpt, kind, "classify takes a BERT classifier (text) or a ViT (images)")


def predict_nodes(ckpt: str | Path, inputs: list[str], device: str = "cpu") -> list[tuple[str, str, float]]:
    """Every node's predicted class and probability for a GAT or HAN checkpoint."""
    kind = model_type(ckpt)
    if kind not in ("gat", "han"):
        raise _wrong(ckpt, kind, "predict takes a GAT or HAN node classifier")
    from attnlab.apps import graph

    return graph.predict(*graph.load(ckpt, inputs, device=device))
