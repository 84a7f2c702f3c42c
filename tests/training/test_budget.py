"""steps_within_budget: the schedule's length from timed probe updates, nothing of the run touched."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.training.budget import steps_within_budget


def test_budget_scales_with_time_and_is_capped_by_steps(make_model, make_data, config):
    model, data = make_model(), make_data()
    roomy = steps_within_budget(model, data, dataclasses.replace(config, steps=10**9, max_time_s=2.0))
    tight = steps_within_budget(model, data, dataclasses.replace(config, steps=10**9, max_time_s=0.2))
    assert roomy > tight >= 1
    assert roomy / tight == pytest.approx(10, rel=0.6)  # timings are noisy; the scale is not
    assert steps_within_budget(model, data, dataclasses.replace(config, max_time_s=3600.0)) == config.steps
    assert steps_within_budget(model, data, dataclasses.replace(config, max_time_s=1e-9)) == 1


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
