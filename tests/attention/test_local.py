"""Luong's local attention (local-m, local-p) against an fp64 reference; the weights vanish
outside the window."""

import math

import pytest
import torch

from attnlab.attention import LocalAttention
from attnlab.errors import AttnlabError


def reference(m, query, keys, values, mask, step):
    """Window |j - p| <= D, softmax of the general score inside, local-p times a Gaussian (fp64)."""
    q, k, v = query.double(), keys.double(), values.double()
    lengths = mask.sum(1).double()
    if m.mode == "monotonic":
        centre = torch.minimum(torch.full_like(lengths, step), lengths - 1)
    else:
        hidden = torch.tanh(torch.einsum("hq,bq->bh", m.position_proj.weight.double(), q))
        centre = lengths * torch.sigmoid(torch.einsum("h,bh->b", m.position_v.weight.double()[0], hidden))
    offset = torch.arange(keys.shape[1]).double()[None] - centre[:, None]
    scores = torch.einsum("bq,qk,bjk->bj", q, m.scorer.key_proj.weight.double(), k)
    allowed = mask & (offset.abs() <= m.window)
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1)
    if m.mode == "predictive":
        weights = weights * torch.exp(-offset**2 / (2 * (m.window / 2) ** 2))
    return torch.einsum("bj,bjd->bd", weights, v), weights, allowed


def inputs(batch=4, length=12):
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 7:] = False
    return torch.randn(batch, 6), torch.randn(batch, length, 5), torch.randn(batch, length, 3), mask


@pytest.mark.parametrize("mode", ["monotonic", "predictive"])
@pytest.mark.parametrize("step", [0, 5, 11])
def test_matches_fp64_reference_and_vanishes_outside_window(mode, step):
    m = LocalAttention(6, 5, mode=mode, window=2, score="general")
    query, keys, values, mask = inputs()
    out = m(query, keys, values, step=step, mask=mask)
    want_out, want_w, allowed = reference(m, query, keys, values, mask, step)
    torch.testing.assert_close(out.weights.double(), want_w, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.output.double(), want_out, atol=1e-5, rtol=1e-5)
    assert (out.weights[~allowed] == 0).all()
    assert (out.weights.sum(-1) <= 1 + 1e-6).all()


def test_local_m_window_follows_the_step_and_stops_at_the_end():
    m = LocalAttention(6, 5, mode="monotonic", window=1, score="general")
    query, keys, values, mask = inputs()
    w = m(query, keys, values, step=9, mask=mask).weights
    assert (w[0, :8] == 0).all() and (w[0, 8:11] > 0).all() and w[0, 11] == 0
    assert (w[1, :5] == 0).all() and (w[1, 5:7] > 0).all() and (w[1, 7:] == 0).all()  # S=7: centre 6


def test_gradcheck_local_p_through_the_position():
    m = LocalAttention(6, 5, mode="predictive", window=3).double()
    query, keys, values, mask = inputs(batch=2, length=6)
    args = [t.double().requires_grad_(True) for t in (query, keys, values)]
    assert torch.autograd.gradcheck(lambda q, k, v: m(q, k, v, step=0, mask=mask).output, args)
    q = args[0].detach().clone().requires_grad_(True)
    m(q, args[1].detach(), args[2].detach(), step=0, mask=mask).output.sum().backward()
    assert m.position_proj.weight.grad is not None and m.position_proj.weight.grad.abs().sum() > 0
    assert math.isfinite(float(q.grad.abs().sum()))


def test_bad_arguments():
    with pytest.raises(AttnlabError, match="mode"):
        LocalAttention(4, 4, mode="local")
    with pytest.raises(AttnlabError, match="window"):
        LocalAttention(4, 4, window=0)
