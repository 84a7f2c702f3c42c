"""steps_within_budget: the schedule's length from timed probe updates, nothing of the run touched."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.training import model_loss
from attnlab.training.budget import steps_within_budget


def ticking_loss(clock, seconds):
    """The model's loss, and ``seconds`` on ``clock`` per call (probe ``i`` gets ``seconds[i]``)."""
    calls = []

    def loss_fn(model, batch):
        clock.advance(seconds[min(len(calls), len(seconds) - 1)])
        calls.append(1)
        return model_loss(model, batch)

    return loss_fn


def test_budget_scales_with_time_and_is_capped_by_steps(make_model, make_data, config, clock):
    """Every probe update "takes" 1/64 s on an injected clock (exact in binary): 0.9 * T * 64 updates."""
    model, data = make_model(), make_data()

    def fitted(**changes):
        return steps_within_budget(model, data, dataclasses.replace(config, **changes),
                                   loss_fn=ticking_loss(clock, [1 / 64]), clock=clock)

    assert fitted(steps=10**9, max_time_s=2.0) == int(0.9 * 2.0 * 64) == 115
    assert fitted(steps=10**9, max_time_s=0.5) == int(0.9 * 0.5 * 64) == 28
    assert fitted(max_time_s=3600.0) == config.steps
    assert fitted(max_time_s=1e-9) == 1


def test_the_first_probe_is_not_timed_and_the_median_is_used(make_model, make_data, config, clock):
    seconds = [5.0, 1 / 64, 1 / 64, 3.0, 1 / 64, 1 / 64]  # warm-up, then one outlier
    assert steps_within_budget(make_model(), make_data(), dataclasses.replace(config, steps=10**9, max_time_s=2.0),
                               loss_fn=ticking_loss(clock, seconds), clock=clock) == 115


def test_probes_leave_the_model_and_the_random_state_alone(make_model, make_data, config):
    model, data = make_model(), make_data()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    steps_within_budget(model, data, dataclasses.replace(config, max_time_s=1.0))
    assert torch.equal(torch.rand(3), expected)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(p.grad is None for p in model.parameters())


def test_budget_needs_a_time_limit(make_model, make_data, config):
    with pytest.raises(AttnlabError, match="max_time_s"):
        steps_within_budget(make_model(), make_data(), config)
