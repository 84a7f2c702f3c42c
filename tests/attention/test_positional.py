"""Positional encodings against the papers' formulas (fp64 where the formula is exact)."""

import math

import pytest
import torch

from attnlab.attention import LearnedPositions, RotaryEmbedding, alibi_bias, sinusoidal_positions
from attnlab.attention.positional import alibi_slopes
from attnlab.errors import AttnlabError


def test_sinusoidal_equals_the_paper():
    pe = sinusoidal_positions(50, 16).double()
    for pos in (0, 1, 17, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert math.isclose(pe[pos, 2 * i], math.sin(angle), abs_tol=1e-6)
            assert math.isclose(pe[pos, 2 * i + 1], math.cos(angle), abs_tol=1e-6)
    with pytest.raises(AttnlabError, match="even"):
        sinusoidal_positions(4, 7)


def test_rotary_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding(8)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m, n):
        return (rope(q, torch.tensor([m])) * rope(k, torch.tensor([n]))).sum()

    torch.testing.assert_close(score(3, 1), score(10, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(score(0, 0), (q * k).sum(), atol=1e-6, rtol=0)
    x = torch.randn(2, 3, 5, 8)
    torch.testing.assert_close(rope(x, torch.arange(5)).norm(dim=-1), x.norm(dim=-1))  # a rotation


def test_rotary_matches_complex_multiplication():
    """RoPE is x_pair * exp(i * pos * theta) in complex form (Su et al. 2021, eq. 13)."""
    rope = RotaryEmbedding(6, base=100.0)
    x = torch.randn(1, 2, 4, 6, dtype=torch.float64)
    pos = torch.arange(4)
    theta = 100.0 ** (-torch.arange(0, 6, 2, dtype=torch.float64) / 6)
    z = torch.complex(x[..., 0::2], x[..., 1::2]) * torch.polar(torch.ones(4, 3, dtype=torch.float64), pos[:, None] * theta)
    expected = torch.stack((z.real, z.imag), -1).flatten(-2)
    torch.testing.assert_close(rope(x, pos), expected, atol=1e-6, rtol=0)


def test_alibi_slopes_and_bias():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    assert len(alibi_slopes(6)) == 6
    bias = alibi_bias(2, 3, 5)
    assert bias.shape == (2, 3, 5)
    assert bias[0, 2, 4] == 0 and bias[0, 0, 2] == 0  # bottom-right aligned: query 0 sits at key 2
    torch.testing.assert_close(bias[1, 2, 0], torch.tensor(-4 * 2.0 ** -8))


def test_learned_positions_limit():
    pos = LearnedPositions(4, 3)
    assert pos(torch.arange(4)).shape == (4, 3)
    with pytest.raises(AttnlabError, match="limit of 4 positions"):
        pos(torch.arange(5))
