"""LR schedules against their closed forms (fp64), and as applied through LambdaLR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.training.schedules import SCHEDULES, make_schedule, noam_lr

T, W = 50, 8
s = np.arange(1, T + 1, dtype=np.float64)  # 1-based update numbers
p = np.clip(s - 1 - W, 0, None) / (T - W)  # decay progress
warm = np.minimum(1.0, s / W)
CLOSED_FORMS = {
    "constant": warm,
    "linear": np.where(s <= W, warm, 1 - p),
    "cosine": np.where(s <= W, warm, 0.5 * (1 + np.cos(np.pi * p))),
    "inverse_sqrt": np.minimum(np.sqrt(W / s), s / W),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_matches_closed_form(name):
    fn = make_schedule(name, T, W)
    got = np.array([fn(i) for i in range(T)])  # LambdaLR index i is update s = i + 1
    np.testing.assert_allclose(got, CLOSED_FORMS[name], rtol=1e-12, atol=0)
    assert got[W - 1] == pytest.approx(1.0)  # the peak is reached at the end of warm-up
    assert got.max() <= 1.0 + 1e-12 and got.min() > 0  # no update at lr = 0


@pytest.mark.parametrize("d_model, warmup", [(512, 4000), (64, 100)])
def test_inverse_sqrt_is_the_transformer_schedule_scaled_to_its_peak(d_model, warmup):
    """Vaswani et al. eq. 3: lrate = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)."""
    fn = make_schedule("inverse_sqrt", 10 * warmup, warmup)
    peak = d_model**-0.5 * warmup**-0.5
    for step in (1, 7, warmup // 2, warmup, warmup + 1, 3 * warmup, 10 * warmup):
        paper = d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
        assert peak * fn(step - 1) == pytest.approx(paper, rel=1e-12)
        assert noam_lr(step, d_model, warmup) == pytest.approx(paper, rel=1e-12)


def test_no_warmup_starts_at_the_peak():
    for name in SCHEDULES:
        assert make_schedule(name, 10, 0)(0) == 1.0
    assert make_schedule("inverse_sqrt", 10, 0)(3) == pytest.approx(0.5)  # 1 / sqrt(4)


def test_lambda_lr_applies_the_schedule_update_by_update():
    """The lr used by update s (read inside optimizer.step) is lr * f(s)."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, make_schedule("cosine", T, W))
    used = []
    for _ in range(T):
        used.append(optimizer.param_groups[0]["lr"])
        weight.grad = torch.ones(1)
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(used, 0.3 * CLOSED_FORMS["cosine"], rtol=1e-12)
    assert math.isclose(weight.item(), -sum(used), rel_tol=1e-6)


def test_unknown_schedule_is_named():
    with pytest.raises(AttnlabError, match="unknown 'step'"):
        make_schedule("step", 10)
