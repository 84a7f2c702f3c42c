"""Hard attention (Xu et al. 2015): the sampled path's log-probabilities against an fp64
reference, sampling frequencies, argmax at inference, REINFORCE with a moving-average
baseline, and the Gumbel-softmax straight-through gradient."""

import pytest
import torch

from attnlab.attention import AdditiveAttention, HardAttention, LuongAttention, ReinforceBaseline
from attnlab.errors import AttnlabError


def fp64_scores(scorer: LuongAttention, query, keys):
    return torch.einsum("bq,qk,bjk->bj", query.double(), scorer.key_proj.weight.double(), keys.double())


def inputs(batch=4, length=6):
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[min(2, batch - 1), 3:] = False
    return torch.randn(batch, 5), torch.randn(batch, length, 5), torch.randn(batch, length, 3), mask


def test_sampled_log_prob_output_and_weights():
    m = HardAttention(LuongAttention(5, 5, score="general"), expected_prob=0.0)
    query, keys, values, mask = inputs()
    out = m(query, keys, values, mask=mask, generator=torch.Generator().manual_seed(3))
    index = out.weights.argmax(-1)
    assert ((out.weights == 0) | (out.weights == 1)).all() and (out.weights.sum(-1) == 1).all()
    assert (index[2] < 3).all()
    log_p = torch.log_softmax(fp64_scores(m.scorer, query, keys).masked_fill(~mask, float("-inf")), -1)
    torch.testing.assert_close(out.log_prob.double(), log_p.gather(1, index[:, None])[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.output, values[torch.arange(4), index])


def test_sampling_frequencies_follow_the_softmax():
    m = HardAttention(AdditiveAttention(5, 5, 4), expected_prob=0.0)
    query, keys, values, _ = inputs(batch=1, length=4)
    n = 4000
    q, k, v = query.expand(n, -1), keys.expand(n, -1, -1), values.expand(n, -1, -1)
    weights = m(q, k, v, generator=torch.Generator().manual_seed(0)).weights
    probs = torch.softmax(m.scorer.score(query[:, None], m.precompute_keys(keys))[0, 0], -1)
    torch.testing.assert_close(weights.mean(0), probs.detach(), atol=0.03, rtol=0)


def test_expected_context_with_probability_half():
    m = HardAttention(LuongAttention(5, 5, score="general"), expected_prob=0.5)
    query, keys, values, mask = inputs(batch=400)
    out = m(query, keys, values, mask=mask, generator=torch.Generator().manual_seed(1))
    one_hot = (out.weights == 1).any(-1)
    assert 0.4 < float(one_hot.float().mean()) < 0.6
    soft = torch.softmax(fp64_scores(m.scorer, query, keys).masked_fill(~mask, float("-inf")), -1)
    torch.testing.assert_close(out.weights[~one_hot].double(), soft[~one_hot], atol=1e-5, rtol=1e-5)
    assert (out.log_prob[~one_hot] == 0).all() and (out.log_prob[one_hot] < 0).all()
    torch.testing.assert_close(out.output, torch.einsum("bj,bjd->bd", out.weights, values))


def test_argmax_at_inference():
    m = HardAttention(LuongAttention(5, 5, score="general")).eval()
    query, keys, values, mask = inputs()
    out = m(query, keys, values, mask=mask)
    want = fp64_scores(m.scorer, query, keys).masked_fill(~mask, float("-inf")).argmax(-1)
    assert (out.weights.argmax(-1) == want).all() and out.log_prob is None


def test_reinforce_gradient_and_moving_average_baseline():
    baseline = ReinforceBaseline(decay=0.5)
    logits = torch.randn(3, 4, requires_grad=True)
    log_prob = torch.log_softmax(logits, -1)[:, 0]
    reward = torch.tensor([1.0, 2.0, 6.0])
    baseline.loss(log_prob, reward)  # first call: the baseline starts at the batch mean
    assert float(baseline.value) == pytest.approx(3.0)
    want = torch.autograd.grad(-((reward - 3.0) * log_prob).mean(), logits, retain_graph=True)[0]
    loss = baseline.loss(log_prob, reward)  # advantage R - 3
    loss.backward()
    torch.testing.assert_close(logits.grad, want)
    assert float(baseline.value) == pytest.approx(0.5 * 3.0 + 0.5 * 3.0)


def test_gumbel_straight_through():
    m = HardAttention(LuongAttention(5, 5, score="general"), estimator="gumbel", temperature=0.5)
    query, keys, values, mask = inputs()
    values.requires_grad_(True)
    out = m(query, keys, values, mask=mask, generator=torch.Generator().manual_seed(0))
    assert ((out.weights - out.weights.round()).abs() < 1e-6).all() and (out.weights[2, 3:] == 0).all()
    out.output.sum().backward()
    grad = m.scorer.key_proj.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(AttnlabError, match="estimator"):
        HardAttention(LuongAttention(4, 4), estimator="st")
    with pytest.raises(AttnlabError, match="temperature"):
        HardAttention(LuongAttention(4, 4), temperature=0)
    with pytest.raises(AttnlabError, match="expected_prob"):
        HardAttention(LuongAttention(4, 4), expected_prob=2.0)
