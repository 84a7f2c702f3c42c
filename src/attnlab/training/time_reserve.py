"""Move a time-budgeted run's limit by what its final evaluation measures it needs.

A command's budget ``T`` covers training and the evaluation after it. Before the run the
evaluation's time is a guess (the app holds ``held_s``, e.g. 15% of ``T``); the decoding
time of a translator depends on the lengths the trained model writes, unknown before
training. Once, when a share ``at`` of the training limit ``L`` has passed (the model
writes sentences of about their final length by then), the app measures what the evaluation
needs, ``needed_s`` (:attr:`TimeReserve.measure`, with the model as trained so far), and the
limit becomes::

    L' = L + max(0, held_s - needed_s)

so a run whose evaluation is cheap trains for the rest of its budget. The limit only moves
later: a model half-way through training may still write overlong sentences (a barely
trained one writes every sentence to the length limit), so a dear measurement is not
trusted to cut training; the evaluation itself then fits what is left (decodes greedily,
or fewer sentences) as before. The schedule re-fit
(:mod:`attnlab.training.schedule_refit`) then sizes the learning-rate schedule to ``L'``.
The measuring time is spent inside the budget (it passes on the same clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from attnlab.errors import AttnlabError


@dataclass
class TimeReserve:
    """``held_s`` seconds the budget kept for after training; ``measure()`` -> the seconds
    that evaluation needs, measured now; measured once, at ``at`` of the training limit."""

    held_s: float
    measure: Callable[[], float]
    at: float = 0.5

    def __post_init__(self) -> None:
        if self.held_s < 0 or not 0 < self.at < 1:
            raise AttnlabError(f"TimeReserve: held_s must be >= 0 and at in (0, 1), got {self.held_s}, {self.at}")

    def due(self, elapsed_s: float, limit_s: float) -> bool:
        """Whether the measurement is due at ``elapsed_s`` of a ``limit_s`` training limit."""
        return elapsed_s >= self.at * limit_s

    def moved(self, limit_s: float, needed_s: float) -> float:
        """The training limit ``L'`` for a measured ``needed_s`` (see the module docstring)."""
        return limit_s + max(0.0, self.held_s - needed_s)
