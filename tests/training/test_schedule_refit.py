"""Schedule re-fit: the formula on a synthetic clock, then the Trainer re-sizing a
time-budgeted run on an injected clock (no assertion depends on wall time) (learning rates of the new length from the next update on, the length
recorded in the checkpoint and kept by a resumed run)."""

from __future__ import annotations

import dataclasses

import pytest

from attnlab.errors import AttnlabError
from attnlab.io import read_json
from attnlab.training import Trainer, find_checkpoint
from attnlab.training.checkpoint import STATE_FILE
from attnlab.training.schedule_refit import ScheduleRefit
from attnlab.training.schedules import make_schedule


def test_refit_formula_on_a_synthetic_clock():
    refit = ScheduleRefit(max_time_s=100.0, max_steps=10_000, at=(0.1, 0.5), fraction=0.9, skip=5)
    # 2 s per update: timing starts after update 5 (t = 10); the first point is t >= 10
    assert [refit.observe(s, 2.0 * s) for s in range(1, 5)] == [None] * 4
    assert refit.observe(5, 10.0) is None  # the timing origin
    assert refit.observe(6, 12.0) == 6 + int((90 - 12) / 2.0)  # 0.1 * 100 passed: 45
    assert [refit.observe(s, 2.0 * s) for s in range(7, 25)] == [None] * 18  # before t = 50
    # then slower: 20 updates in the 58 s since the previous re-fit (update 6, t = 12)
    assert refit.observe(26, 70.0) == 26 + int((90 - 70) / ((70 - 12) / (26 - 6)))
    assert refit.observe(27, 99.0) is None  # every point used


def test_a_run_that_speeds_up_after_a_refit_is_refitted_before_it_ends():
    """2 s per update up to the first point, then 0.5 s: the 45 updates fitted there end at
    t = 31.5, before the point in time t = 50; the schedule's own 50% point (update
    0.5 / 0.9 * 45 = 25, where a steady rate would be at t = 50) re-fits it first."""
    refit = ScheduleRefit(max_time_s=100.0, max_steps=10_000, at=(0.1, 0.5), fraction=0.9, skip=5)
    assert [refit.observe(s, 2.0 * s, 100) for s in range(1, 6)] == [None] * 5  # update 5: the origin
    assert refit.observe(6, 12.0, 100) == 45  # the first point, in time
    def at(s):
        return 12.0 + 0.5 * (s - 6)

    assert [refit.observe(s, at(s), 45) for s in range(7, 25)] == [None] * 18
    # the rate since the previous re-fit (0.5 s), not the run's average (0.575 s, the slow
    # start included, which would fit 144 updates and end the run at t = 71.5)
    assert refit.observe(25, at(25), 45) == 25 + int((90 - at(25)) / 0.5)  # 162: ends at t = 90
    assert refit.observe(26, at(26), 162) is None  # every point used
    # points in time only (steps not given): no re-fit until t = 50, after those 45 updates
    timed = ScheduleRefit(max_time_s=100.0, max_steps=10_000, at=(0.1, 0.5), fraction=0.9, skip=5)
    [timed.observe(s, 2.0 * s) for s in range(1, 6)]
    assert timed.observe(6, 12.0) == 45
    assert [timed.observe(s, at(s)) for s in range(7, 46)] == [None] * 39


def test_a_machine_that_speeds_up_late_gets_its_budget_used():
    """1 s per update up to 80 s of a 100 s budget, then 0.25 s: the schedule fitted at 75%
    (95 updates) would end at t = 83.75 with 11 s unused; the 90% point (update
    0.9 / 0.95 * 95 = 90 of the schedule, t = 82.5) re-fits it on the rate since the 75%
    re-fit (15 updates in 7.5 s: 0.5 s) to 115 updates, ending at t = 88.75."""
    def run(at):
        refit = ScheduleRefit(max_time_s=100.0, max_steps=10_000, at=at, skip=1)
        steps, step, t = 100, 0, 0.0
        while step < steps:
            step += 1
            t += 1.0 if t < 80 else 0.25
            steps = refit.observe(step, t, steps) or steps
        return steps, t

    assert run((0.1, 0.25, 0.5, 0.75)) == (95, 83.75)
    steps, end = run((0.1, 0.25, 0.5, 0.75, 0.9))
    assert steps == 90 + int((95 - 82.5) / 0.5) == 115 and end == 88.75
    assert ScheduleRefit(max_time_s=1.0, max_steps=10).at[-1] == 0.9  # the default has the late point


def test_refit_is_capped_and_passes_points_at_once():
    refit = ScheduleRefit(max_time_s=10.0, max_steps=50, skip=1)
    refit.observe(1, 0.01)
    assert refit.observe(2, 0.02) is None  # before 10% of the budget
    assert refit.observe(3, 6.0) == 4  # past both points: one re-fit, at least one more update
    assert refit.observe(4, 6.1) is None
    fast = ScheduleRefit(max_time_s=10.0, max_steps=50, skip=1)
    fast.observe(1, 0.001)
    assert fast.observe(40, 1.0) == 50  # the rate allows ~370: the cap


@pytest.mark.parametrize("kwargs", [{"at": (0.5, 0.1)}, {"at": (0.0,)}, {"at": (1.0,)}, {"fraction": 0.0}, {"fraction": 1.5}])
def test_refit_rejects_bad_settings(kwargs):
    with pytest.raises(AttnlabError, match="ScheduleRefit"):
        ScheduleRefit(max_time_s=1.0, max_steps=10, **kwargs)


def _trainer(make_model, data, config, clock) -> Trainer:
    trainer = Trainer(make_model(), data, config, clock=clock)
    data.trainer = trainer
    return trainer


def test_trainer_refits_a_schedule_sized_too_short(make_model, make_data, config, clock, ticking):
    """A probe said 10 updates; each update takes 1/64 s of a 1 s budget (on an injected
    clock): re-fitted at 10% (update 7) and 50% (update 32) of the budget to
    s + (0.95 - t) * 64 = 60 updates, the cosine of that length from then on."""
    config = dataclasses.replace(config, steps=10, refit_up_to=10_000, max_time_s=1.0, warmup_steps=2)
    data = ticking(make_data(), clock, seconds=1 / 64)
    result = _trainer(make_model, data, config, clock).fit()
    recorded = read_json(find_checkpoint(config.out_dir) / STATE_FILE)["config"]
    assert recorded["steps"] == result.step == 60 and not result.stopped_by_time
    final = make_schedule("cosine", 60, 2)
    after = range(32, 60)  # the updates after the last re-fit
    assert [data.lrs[i] for i in after] == pytest.approx([config.lr * final(i) for i in after], rel=1e-12)


def test_trainer_without_refit_keeps_its_length(make_model, make_data, config, clock, ticking):
    config = dataclasses.replace(config, steps=10, max_time_s=5.0)
    result = _trainer(make_model, ticking(make_data(), clock, seconds=0.0), config, clock).fit()
    assert result.step == 10


def test_resumed_run_keeps_the_refitted_length(make_model, make_data, config, clock, ticking):
    config = dataclasses.replace(config, steps=10, refit_up_to=10_000, max_time_s=1.0, warmup_steps=2)
    first = _trainer(make_model, ticking(make_data(), clock, seconds=1 / 64, interrupt_at=24), config, clock).fit()
    assert first.interrupted and first.step == 24
    fitted = read_json(find_checkpoint(config.out_dir) / STATE_FILE)["config"]["steps"]
    assert fitted == 7 + int((0.95 - 7 / 64) * 64)  # the re-fit at 10% of the budget
    data = ticking(make_data(), clock, seconds=0.0)
    resumed = _trainer(make_model, data, config, clock).fit(resume=True)  # the original config says 10 steps
    assert resumed.step == fitted and resumed.losses[:24] == first.losses
    schedule = make_schedule("cosine", fitted, 2)
    assert data.lrs == pytest.approx([config.lr * schedule(i) for i in range(24, fitted)], rel=1e-12)
