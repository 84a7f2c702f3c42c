"""The attribution methods by name, each a function ``Explainable -> (L,)`` (one file each).

Higher is more important: a method's order is its attribution sorted descending.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from attnlab.errors import AttnlabError
from attnlab.explain.attention_gradient import attention_gradient
from attnlab.explain.explainable import Explainable
from attnlab.explain.flow import flow
from attnlab.explain.grad_input import grad_input
from attnlab.explain.integrated_gradients import integrated_gradients
from attnlab.explain.random_baseline import random_baseline
from attnlab.explain.raw_attention import raw_attention
from attnlab.explain.rollout import rollout
from attnlab.explain.saliency import saliency

METHODS: dict[str, Callable[[Explainable], Tensor]] = {
    "raw_attention": raw_attention,
    "rollout": rollout,
    "flow": flow,
    "saliency": saliency,
    "grad_input": grad_input,
    "integrated_gradients": integrated_gradients,
    "attention_gradient": attention_gradient,
    "random": random_baseline,
}


def pick(names: list[str] | None) -> dict[str, Callable[[Explainable], Tensor]]:
    """The methods named (all when None); an unknown name is one clear error."""
    if not names:
        return dict(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise AttnlabError(f"--methods: unknown {unknown}; expected some of {list(METHODS)}")
    return {n: METHODS[n] for n in names}
