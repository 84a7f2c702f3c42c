"""``attnlab showcase``: every mechanism is shown, its rows are distributions, and a PNG is drawn."""

import pytest
import torch

from attnlab.apps.showcase import draw_showcase, showcase_weights
from attnlab.cli.main import main

MECHANISMS = [
    "scaled dot (softmax)",
    "causal",
    "key padding",
    "multi-head (mean of 2)",
    "additive (Bahdanau)",
    "Luong dot",
    "Luong general",
    "Luong concat",
    "local-m",
    "location",
    "monotonic",
    "hard (sampled)",
    "coverage",
    "sparsemax",
    "hardmax",
    "sampled",
]
ONE_HOT = ["hard (sampled)", "hardmax", "sampled"]


@pytest.fixture(scope="module")
def weights():
    return showcase_weights(seed=1)


def test_showcase_shows_every_mechanism(weights):
    assert list(weights) == MECHANISMS


@pytest.mark.parametrize("name", MECHANISMS)
def test_every_row_is_a_distribution(weights, name):
    w = weights[name]
    assert w.shape == (6, 6)
    assert torch.isfinite(w).all() and (w >= 0).all(), name
    # fp32; monotonic's parallel closed form (log-space cumprod) drifts by ~1e-6
    torch.testing.assert_close(w.sum(-1), torch.ones(6), atol=1e-5, rtol=0, msg=name)


def test_weights_respect_masks_windows_and_one_hot_normalizers(weights):
    assert (weights["causal"].triu(1) == 0).all()
    assert (weights["key padding"][:, -2:] == 0).all()
    i, j = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    assert (weights["local-m"][(i - j).abs() > 1] == 0).all()  # local-m, D = 1: keys i-1..i+1
    assert (weights["sparsemax"] == 0).any()  # sparse, unlike softmax
    for name in ONE_HOT:
        assert set(weights[name].unique().tolist()) == {0.0, 1.0}, name


def test_showcase_is_deterministic_for_a_seed_and_leaves_the_global_rng_alone(weights):
    state = torch.random.get_rng_state()
    again = showcase_weights(seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    other = showcase_weights(seed=2)
    for name in MECHANISMS:
        assert torch.equal(again[name], weights[name]), name
    assert not torch.equal(other["scaled dot (softmax)"], weights["scaled dot (softmax)"])


def test_draw_showcase_writes_a_png(weights, tmp_path):
    path = draw_showcase(weights, tmp_path / "showcase.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_showcase_command_prints_every_mechanism_and_draws(tmp_path, capsys):
    assert main(["showcase", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in MECHANISMS:
        assert f"{name}:" in out
    assert (tmp_path / "showcase.png").read_bytes()[:4] == b"\x89PNG"
