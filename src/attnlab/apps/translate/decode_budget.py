"""How much of the test split the final evaluation decodes, and how, inside ``--max-minutes``.

The time budget covers the whole command, the final test decoding included. Timed on a
probe of ``sample`` test sources spread over the split (seconds per sentence ``r_b`` at
beam ``b``), with ``left`` seconds of the budget remaining after each probe:

    beam      settings.beam   if r_beam * M <= left         (M: test sentences)
              1 (greedy)      otherwise
    decoded   M               if r_1 * M <= left
              N = max(floor(left / r_1), min(sample, M))   otherwise: N sentences spread
                                                             evenly over the split (rows
                                                             floor(i M / N), i < N)

so a run whose budget is nearly spent still reports a score, on at least one probe's size
(a stated overrun of about one probe's decoding), and says so in one line. The rows are
spread, not the first N: the split is ordered by program, and a prefix would score a few
programs only.

Before that, at half of its training (:mod:`attnlab.training.time_reserve`), the run measures
what this evaluation will need with the model as trained so far
(:func:`evaluation_seconds`) and trains for the rest of the budget:

    needed    m * r_beam * M + p_beam          if that fits in what the budget held back (held_s)
              m * r_1 * M + p_beam + p_1       otherwise (the evaluation will decode greedily)

with the margin ``m = 1.25`` for lengths that still change and a machine whose load does, and
``p_b``: the probes' own time (the final evaluation probes again).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class DecodePlan:
    """``beam`` for the final evaluation and ``sentences``: how many of the test split's
    sentences it decodes (all of them when the budget allows), :meth:`rows` which."""

    beam: int
    sentences: int

    def rows(self, total: int) -> list[int]:
        """The decoded rows of a split of ``total``: all, or ``sentences`` spread evenly."""
        if self.sentences >= total:
            return list(range(total))
        return [i * total // self.sentences for i in range(self.sentences)]


def fitted_decoding(translator, sources: list[str], beam: int, *, started: float, max_time_s: float | None,
                    sample: int = 32, clock: Callable[[], float] = time.monotonic) -> DecodePlan:
    """The :class:`DecodePlan` of decoding ``sources`` (the test split) with ``translator``
    at ``beam`` inside ``max_time_s`` seconds counted from ``started`` (``clock``'s time);
    see the module docstring. No budget, or no more sources than ``sample``: all at ``beam``."""
    total = len(sources)
    if max_time_s is None or total <= sample:
        return DecodePlan(beam, total)
    seconds_each = _probe_timer(translator, sources, sample, clock)

    def left() -> float:
        return max(started + max_time_s - clock(), 0.0)

    if beam > 1:
        needed = seconds_each(beam) * total
        if needed <= left():
            return DecodePlan(beam, total)
        print(f"attnlab: beam {beam} would take ~{needed / 60:.1f} min, {left() / 60:.1f} left in "
              "--max-minutes: the test split is decoded greedily", file=sys.stderr)
    each = seconds_each(1)
    fits = total if each <= 0 else min(total, math.floor(left() / each))
    if fits >= total:
        return DecodePlan(1, total)
    return DecodePlan(1, max(fits, min(sample, total)))


MARGIN = 1.25  # on a measured decoding time: lengths still change, and the machine's load


def evaluation_seconds(translator, sources: list[str], beam: int, *, held_s: float, sample: int = 32,
                       clock: Callable[[], float] = time.monotonic) -> float:
    """Seconds the final evaluation of ``sources`` will need, measured now on a probe: at
    ``beam`` if that fits in ``held_s``, else greedily (see the module docstring)."""
    total, begun = len(sources), clock()
    seconds_each = _probe_timer(translator, sources, sample, clock)
    decoding = MARGIN * seconds_each(beam) * total
    if beam > 1 and decoding + clock() - begun > held_s:
        decoding = MARGIN * seconds_each(1) * total
    return decoding + clock() - begun


def _probe_timer(translator, sources: list[str], sample: int, clock: Callable[[], float]) -> Callable[[int], float]:
    """``seconds_each(beam)``: seconds per sentence of decoding ``sample`` sources spread over the split."""
    probe = sources[:: max(1, len(sources) // sample)][:sample]

    def seconds_each(size: int) -> float:
        begun = clock()
        translator.translate(probe, beam_size=size)
        return (clock() - begun) / max(len(probe), 1)

    return seconds_each
