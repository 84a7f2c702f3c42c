"""GAT/HAN on the one Trainer: it learns, keeps the best-validation weights, and a stopped
run resumes to the same losses and the same kept model."""

from __future__ import annotations

import torch

from attnlab.apps import graph
from attnlab.io import read_json
from attnlab.models import GAT


def settings(out, **overrides) -> graph.GraphSettings:
    values = dict(model="gat", data="sbm", homophily=0.95, seeds=1, steps=60, out=str(out), progress=False,
                  threads=1)
    return graph.GraphSettings(**{**values, **overrides})


def test_training_on_a_homophilous_sbm_reaches_90_percent(tmp_path):
    result = graph.train(settings(tmp_path / "gat"), echo=lambda _: None)
    run = result.metrics["runs"][0]
    assert run["test_acc"] >= 0.90, run
    losses = read_json(tmp_path / "gat" / "seeds" / "0" / "trainer_state.json")["losses"]
    assert len(losses) == 60 and losses[-1] < losses[0]
    kept = GAT.from_pretrained(tmp_path / "gat")  # the best-validation weights, saved in out
    for name, tensor in kept.state_dict().items():
        assert torch.equal(tensor, result.model.state_dict()[name])


def test_resume_continues_with_the_same_losses_and_best_model(tmp_path):
    straight = graph.train(settings(tmp_path / "a", steps=30), echo=lambda _: None)
    graph.train(settings(tmp_path / "b", steps=15), echo=lambda _: None)
    resumed = graph.train(settings(tmp_path / "b", steps=30, resume=True), echo=lambda _: None)
    def losses(run: str) -> list[float]:
        return read_json(tmp_path / run / "seeds" / "0" / "trainer_state.json")["losses"]

    assert len(losses("b")) == 30 and losses("a") == losses("b")  # a constant learning rate: the whole run
    for name, tensor in straight.model.state_dict().items():  # the same best-validation weights kept
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
