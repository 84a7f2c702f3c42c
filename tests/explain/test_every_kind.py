"""``attnlab explain`` on a checkpoint of every model kind: every method runs, the table and
the JSON have the promised shape, and every number is finite."""

from __future__ import annotations

import json
import math

import pytest

from attnlab.apps.explain import explain
from attnlab.explain.methods import METHODS

INPUTS = {"transformer": ["a dog ."], "seq2seq": ["a dog ."], "gpt2": ["def f(x):"],
          "bert": ["the list [MASK] sorts"], "vit": [], "gat": [], "han": []}


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_every_method_on_every_kind(tiny_checkpoints, kind, tmp_path):
    report = explain(tiny_checkpoints[kind], INPUTS[kind])
    assert report.kind == kind and report.predictions
    assert set(report.evaluation.table) == set(METHODS)  # tiny inputs: flow runs too
    for row in report.evaluation.table.values():
        assert all(math.isfinite(v) for v in row.values())
        assert -1 <= row["aopc"] <= 1 and 0 <= row["insertion_auc"] <= 1
    for name, attributions in report.evaluation.attributions.items():
        for x, a in zip(report.predictions, attributions):
            assert a.shape == (x.num_units,) and bool(a.isfinite().all()), name
    data = json.loads(report.write_json(tmp_path / "x.json").read_text())
    assert set(data["methods"][next(iter(METHODS))]) >= {"aopc", "insertion_auc", "comprehensiveness", "sufficiency"}
    assert all({"layer", "head", "importance"} <= set(h) for h in data["heads"])
    assert bool(data["heads"]) == (kind not in ("gat", "han", "seq2seq"))  # multi-head models: every head
    assert len(data["examples"]) == len(report.predictions)
    if kind == "gpt2":
        assert len(data["lens"][0]["layers"]) == report.predictions[0].module.config.num_layers
    if kind in ("transformer", "seq2seq"):
        assert all(0 <= e["probability"] <= 1 and e["entropy"] >= 0 for e in data["examples"])
