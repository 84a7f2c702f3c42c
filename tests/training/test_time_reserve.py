"""The measured evaluation reserve: the formula, then the Trainer moving a time-budgeted
run's limit (and so its re-fitted schedule) by what the reserve measures, on an injected
clock (no assertion depends on wall time)."""

from __future__ import annotations

import dataclasses

import pytest

from attnlab.errors import AttnlabError
from attnlab.io import read_json
from attnlab.training import Trainer, find_checkpoint
from attnlab.training.checkpoint import STATE_FILE
from attnlab.training.time_reserve import TimeReserve


def test_moved_limit_formula():
    reserve = TimeReserve(held_s=20.0, measure=lambda: 0.0, at=0.5)
    assert not reserve.due(49.9, 100.0) and reserve.due(50.0, 100.0)
    assert reserve.moved(100.0, needed_s=5.0) == 115.0  # cheap evaluation: train 15 s longer
    assert reserve.moved(100.0, needed_s=45.0) == 100.0  # dear: never earlier than planned


@pytest.mark.parametrize("kwargs", [dict(held_s=-1.0), dict(held_s=1.0, at=0.0), dict(held_s=1.0, at=1.0)])
def test_reserve_rejects_bad_settings(kwargs):
    with pytest.raises(AttnlabError, match="TimeReserve"):
        TimeReserve(measure=lambda: 0.0, **kwargs)


def _run(make_model, make_data, config, clock, ticking, needed: float | None, evaluate=None):
    """A run sized 10 updates, re-fitted, 1 s budget, 1/64 s per update; the reserve held
    0.2 s and measures ``needed`` (None: no reserve), its measuring taking 1/64 s."""
    config = dataclasses.replace(config, steps=10, refit_up_to=10_000, max_time_s=1.0, warmup_steps=2,
                                 eval_every=8 if evaluate else config.eval_every)
    seen = []

    def measure() -> float:
        seen.append((trainer.model.training, trainer.step, clock()))
        clock.advance(1 / 64)
        return needed

    data = ticking(make_data(), clock, seconds=1 / 64)
    reserve = None if needed is None else TimeReserve(held_s=0.2, measure=measure)
    trainer = Trainer(make_model(), data, config, clock=clock, reserve=reserve, evaluate=evaluate)
    data.trainer = trainer
    result = trainer.fit()
    recorded = read_json(find_checkpoint(config.out_dir) / STATE_FILE)["config"]
    return result, recorded, seen


def test_a_cheap_evaluation_gives_training_the_rest_of_the_budget(make_model, make_data, config, clock, ticking):
    plain, plain_recorded, _ = _run(make_model, make_data, config, clock, ticking, needed=None)
    clock.now = 0.0
    result, recorded, seen = _run(make_model, make_data, dataclasses.replace(config, out_dir=config.out_dir + "2"),
                                  clock, ticking, needed=0.05)
    # measured once, in eval mode, at half the 1 s limit (update 32 ends at 32/64 s)
    assert seen == [(False, 32, 0.5)]
    assert recorded["max_time_s"] == pytest.approx(1.0 + 0.2 - 0.05, rel=1e-12)
    assert plain_recorded["max_time_s"] == 1.0
    # the schedule re-fits to the moved limit: ~0.95 * 1.15 * 64 updates, not ~0.95 * 64
    assert plain.step == 60 and 66 <= result.step <= 70 and not result.stopped_by_time
    assert result.losses[:32] == plain.losses[:32]  # measuring changes no update before it


def test_a_dear_evaluation_keeps_the_planned_limit(make_model, make_data, config, clock, ticking):
    result, recorded, seen = _run(make_model, make_data, config, clock, ticking, needed=0.5)
    assert len(seen) == 1 and recorded["max_time_s"] == 1.0
    assert result.step == 59  # as without a reserve (60), less the update its 1/64 s of measuring took


def test_the_last_validation_counts_in_the_reserve(make_model, make_data, config, clock, ticking):
    """A validation taking 0.03 s ran before the measurement: the final one will repeat it."""

    def evaluate(model) -> dict[str, float]:
        clock.advance(0.03)
        return {"loss": 0.0}

    _, recorded, _ = _run(make_model, make_data, config, clock, ticking, needed=0.05, evaluate=evaluate)
    assert recorded["max_time_s"] == pytest.approx(1.0 + 0.2 - 0.05 - 0.03, rel=1e-12)
