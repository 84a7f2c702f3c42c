"""Learning-rate schedules: plain functions ``step -> multiplier`` of the peak ``lr``.

Notation: ``s`` is the 1-based number of the optimizer update being made
(``s = 1 .. T``), ``T`` the total number of updates (``TrainConfig.steps``) and ``W`` the
number of warm-up updates. The learning rate of update ``s`` is ``lr * f(s)``.

Warm-up (every schedule): ``f(s) = s / W`` for ``s <= W`` — the peak is reached at
update ``W``. After warm-up the decaying schedules use the progress
``p = (s - 1 - W) / (T - W)``, which runs from 0 (first update after warm-up, at the
peak) to ``1 - 1/(T - W)`` (the last update, just above zero — no update is wasted
at a learning rate of exactly zero):

    constant       f(s) = 1
    linear         f(s) = 1 - p
    cosine         f(s) = (1 + cos(pi * p)) / 2                (Loshchilov & Hutter, SGDR)
    inverse_sqrt   f(s) = min(s ** -0.5, s * W ** -1.5) / W ** -0.5

``inverse_sqrt`` is the schedule of Vaswani et al., "Attention Is All You Need" (eq. 3),
``lrate = d_model**-0.5 * min(s**-0.5, s * W**-1.5)``, divided by its peak value
``d_model**-0.5 * W**-0.5`` so that ``lr`` is the peak: ``f(s) = min(sqrt(W / s), s / W)``.
With ``W = 0`` it is ``1 / sqrt(s)``. :func:`noam_lr` gives the paper's absolute value.

``make_schedule`` returns the function that ``torch.optim.lr_scheduler.LambdaLR``
expects; that one counts from 0, so it is shifted by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from attnlab.errors import AttnlabError


def warmup(step: int, warmup_steps: int) -> float:
    """Linear warm-up factor ``min(1, s / W)`` (1 when there is no warm-up)."""
    return min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0


def _progress(step: int, total_steps: int, warmup_steps: int) -> float:
    """``p`` in [0, 1): how far update ``s`` is into the decay phase."""
    return max(0, step - 1 - warmup_steps) / max(1, total_steps - warmup_steps)


def constant(step: int, total_steps: int, warmup_steps: int = 0) -> float:
    return warmup(step, warmup_steps)


def linear(step: int, total_steps: int, warmup_steps: int = 0) -> float:
    if step <= warmup_steps:
        return warmup(step, warmup_steps)
    return 1.0 - _progress(step, total_steps, warmup_steps)


def cosine(step: int, total_steps: int, warmup_steps: int = 0) -> float:
    if step <= warmup_steps:
        return warmup(step, warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * _progress(step, total_steps, warmup_steps)))


def inverse_sqrt(step: int, total_steps: int, warmup_steps: int = 0) -> float:
    w = max(1, warmup_steps)
    return min(math.sqrt(w / step), step / w)


def noam_lr(step: int, d_model: int, warmup_steps: int) -> float:
    """The absolute learning rate of Vaswani et al. (2017), eq. 3 (``step >= 1``)."""
    return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


SCHEDULES: dict[str, Callable[[int, int, int], float]] = {
    "constant": constant,
    "linear": linear,
    "cosine": cosine,
    "inverse_sqrt": inverse_sqrt,
}


def make_schedule(name: str, total_steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """The ``LambdaLR`` function of schedule ``name``: ``index -> f(index + 1)``."""
    if name not in SCHEDULES:
        raise AttnlabError(f"schedule: unknown {name!r}; expected one of {sorted(SCHEDULES)}")
    fn = SCHEDULES[name]

    def lr_lambda(index: int) -> float:  # LambdaLR's index 0 is update s = 1
        return fn(index + 1, total_steps, warmup_steps)

    return lr_lambda
