"""attnlab.explain: which explanation of a prediction is faithful, and which heads matter.

    attnlab.explain(model_or_ckpt, inputs, methods=None, heads=True) -> ExplainReport
        (this package is callable: the Python API; a report shows itself in a notebook)

One seam (:class:`~attnlab.explain.explainable.Explainable`: one prediction's input units,
a forward from them, its attention graph), one file per method:

    raw_attention  rollout  flow  saliency  grad_input  integrated_gradients
    attention_gradient  random                                  (methods.METHODS)
    faithfulness   deletion / insertion curves, AOPC, AUC, ERASER comprehensiveness, sufficiency
    evaluate       every method on every prediction: the ranked table
    heads          masking and gradient importance of every head, the pruning curve
    lens           GPT's logit lens, a translator's per-step probability and entropy
    report         text, JSON and the offline page; notebook: the inline iframe

The adapters that make an Explainable of each model kind live in ``attnlab.apps.explain``
(this package imports no model).
"""

from __future__ import annotations

import sys
import types


class _CallableModule(types.ModuleType):
    """``attnlab.explain`` is this package and the function of the same name."""

    def __call__(self, model_or_ckpt, inputs=None, **options):
        """``attnlab.explain(model_or_ckpt, inputs, methods=None, heads=True, device="cpu")``:
        see :func:`attnlab.apps.explain.explain`."""
        from attnlab.apps.explain import explain

        return explain(model_or_ckpt, inputs, **options)


sys.modules[__name__].__class__ = _CallableModule
