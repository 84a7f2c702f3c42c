"""The one time-budget policy (apps.common.budgeted): a budget sizes the schedule up as well
as down, covers start-up and the final evaluation, and a resumed run keeps its length."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time

import pytest
import torch
from torch import nn

from attnlab.apps import common
from attnlab.errors import AttnlabError
from attnlab.training import TrainConfig, Trainer
from attnlab.training.budget import steps_within_budget

TICK = 1 / 64  # seconds per probe update on the injected clock (exact in binary)


class Rows:
    def batch(self, step):
        g = torch.Generator().manual_seed(step)
        x = torch.randn(4, 3, generator=g)
        return {"x": x, "y": x.sum(-1, keepdim=True)}


def loss(model, batch):
    return nn.functional.mse_loss(model(batch["x"]), batch["y"])


@pytest.fixture
def ticking(monkeypatch):
    """Every clock reading advances TICK: each timed probe update "takes" TICK seconds."""
    counter = itertools.count()
    monkeypatch.setattr(common, "steps_within_budget",
                        functools.partial(steps_within_budget, clock=lambda: next(counter) * TICK))


def config(tmp_path, **changes) -> TrainConfig:
    return TrainConfig(**{"out_dir": str(tmp_path / "run"), "steps": 2000, "progress": False, **changes})


def test_a_budget_without_steps_sizes_the_schedule_up_past_the_default(ticking, tmp_path):
    fitted = common.budgeted(config(tmp_path, max_time_s=600.0), nn.Linear(3, 1), Rows(), loss_fn=loss,
                             fit=True, resume=False)
    train_s = (1 - common.EVAL_SHARE) * 600.0
    assert fitted.max_time_s == pytest.approx(train_s)
    assert fitted.steps == int(0.95 * train_s / TICK) > 2000  # not capped at the app's default
    assert fitted.refit_up_to is not None and fitted.refit_up_to >= fitted.steps


def test_the_budget_counts_the_start_up(ticking, tmp_path):
    started = time.monotonic() - 100.0  # the corpus and the model took 100 s
    fitted = common.budgeted(config(tmp_path, max_time_s=600.0, steps=50), nn.Linear(3, 1), Rows(), loss_fn=loss,
                             fit=False, resume=False, started=started)
    assert fitted.steps == 50  # --steps given: the budget only stops the run
    assert fitted.max_time_s == pytest.approx((1 - common.EVAL_SHARE) * 600.0 - 100.0, abs=5.0)
    with pytest.raises(AttnlabError, match="no time is left for training"):
        common.budgeted(config(tmp_path, max_time_s=60.0), nn.Linear(3, 1), Rows(), loss_fn=loss,
                        fit=True, resume=False, started=started)


def test_no_budget_keeps_the_default(tmp_path):
    fitted = common.budgeted(config(tmp_path), nn.Linear(3, 1), Rows(), loss_fn=loss, fit=True, resume=False)
    assert fitted.steps == 2000 and fitted.max_time_s is None


def test_a_resumed_run_keeps_the_length_it_recorded(ticking, tmp_path):
    first = common.budgeted(config(tmp_path, max_time_s=1.0), nn.Linear(3, 1), Rows(), loss_fn=loss,
                            fit=True, resume=False)
    assert first.steps == int(0.95 * (1 - common.EVAL_SHARE) / TICK)
    Trainer(nn.Linear(3, 1), Rows(), dataclasses.replace(first, refit_up_to=None), loss_fn=loss).fit()  # no re-fit
    again = common.budgeted(config(tmp_path, max_time_s=600.0), nn.Linear(3, 1), Rows(), loss_fn=loss,
                            fit=True, resume=True)
    assert again.steps == first.steps and again.refit_up_to is None  # what the checkpoint recorded
