"""``attnlab showcase``: every mechanism's weights are distributions, and a PNG is drawn."""

import torch

from attnlab.cli.main import main
from attnlab.showcase import showcase_weights


def test_showcase_weights_are_distributions_that_respect_their_masks():
    weights = showcase_weights(seed=1)
    for name, w in weights.items():
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[0]), msg=name)
    assert (weights["causal"].triu(1) == 0).all()
    assert (weights["key padding"][:, -2:] == 0).all()
    assert set(weights["hardmax"].unique().tolist()) == {0.0, 1.0}


def test_showcase_command_prints_and_draws(tmp_path, capsys):
    assert main(["showcase", "--out", str(tmp_path)]) == 0
    assert "sparsemax:" in capsys.readouterr().out
    assert (tmp_path / "showcase.png").read_bytes()[:4] == b"\x89PNG"
