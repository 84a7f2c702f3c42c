"""Re-size a time-budgeted run's schedule from the run's own update rate.

A schedule sized before the run (:func:`attnlab.training.budget.steps_within_budget`,
a few timed probe updates) misses on a shared machine: probes that run 20% slow end
the cosine decay after 80% of the budget, probes that run fast leave the run stopped
by its budget at a high learning rate. The run itself measures better. At each
fraction ``a`` in ``at`` of the budget ``T`` (elapsed ``t >= a * T``, or updates
``s >= a / fraction * steps``, where the current schedule of ``steps`` updates would be at a
steady rate: a machine that speeds up after a re-fit would otherwise end the run before the
next point, its budget unused), with ``s`` updates done and ``(s0, t0)`` the previous
re-fit (for the first: the end of the first ``skip`` updates, which warm up)::

    r     = (t - t0) / (s - s0)                          seconds per update since then
    steps = min(max_steps, max(s + 1, s + floor((fraction * T - t) / r)))

The schedule function keeps its shape; only its length ``steps`` changes, so the
learning rate moves by a little at a re-fit early in the run (by ``|f(p) - f(p')|`` for
the progress before and after). The rate is the window's since the previous re-fit, not the
run's average: on a shared machine whose load falls mid-run, the average keeps the slow
start and ends the schedule early (a 60-minute French run re-fitted on its average ended
after 36 minutes). Five points (10%, 25%, 50%, 75%, 90%) follow such changes; the late ones
move the learning rate by little because the fitted length changes by little unless the
machine's speed does (and the cosine is low there). The 90% point is for a machine that
speeds up late: a 60-minute German run whose load fell after its 75% re-fit ended after
49 minutes. The Trainer records the new length in the checkpoint,
and a resumed run keeps it: re-fits happen in a run's first session only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from attnlab.errors import AttnlabError


@dataclass
class ScheduleRefit:
    """When and to what length to re-size the schedule; ``observe`` after every update."""

    max_time_s: float
    max_steps: int
    at: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
    fraction: float = 0.95
    skip: int = 5
    _origin: tuple[int, float] | None = field(default=None, init=False, repr=False)
    _done: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if not all(0 < a < 1 for a in self.at) or list(self.at) != sorted(self.at):
            raise AttnlabError(f"ScheduleRefit.at must be increasing fractions in (0, 1), got {self.at}")
        if not 0 < self.fraction <= 1:
            raise AttnlabError(f"ScheduleRefit.fraction must be in (0, 1], got {self.fraction}")

    def observe(self, steps_done: int, elapsed_s: float, steps: int | None = None) -> int | None:
        """After an update: the schedule's new length if a re-fit is due now, else None.

        ``steps_done`` counts this session's updates, ``elapsed_s`` its seconds; ``steps``
        is the schedule's current length (``None``: points in time only).
        """
        if self._origin is None:
            if steps_done >= self.skip:
                self._origin = (steps_done, elapsed_s)
            return None
        passed = self._done
        while self._done < len(self.at) and (
            elapsed_s >= self.at[self._done] * self.max_time_s
            or (steps is not None and steps_done >= self.at[self._done] / self.fraction * steps)
        ):
            self._done += 1  # a slow update may pass several points at once: one re-fit
        if self._done == passed:
            return None
        first_step, first_s = self._origin
        if steps_done <= first_step or elapsed_s <= first_s:
            return None
        per_update = (elapsed_s - first_s) / (steps_done - first_step)
        self._origin = (steps_done, elapsed_s)  # the next re-fit measures the window from here
        fitted = steps_done + int((self.fraction * self.max_time_s - elapsed_s) / per_update)
        return min(self.max_steps, max(steps_done + 1, fitted))
