"""Coverage attention (Tu et al. 2016) and the coverage loss (See et al. 2017) against fp64
references; the decoder state accumulates coverage divided by the fertility."""

import pytest
import torch

from attnlab.attention import CoverageAttention, coverage_loss
from attnlab.errors import AttnlabError
from attnlab.models.seq2seq_attention import DecoderAttention


def inputs(batch=3, length=8):
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 5:] = False
    coverage = torch.rand(batch, length) * 2
    return torch.randn(batch, 6), torch.randn(batch, length, 5), torch.randn(batch, length, 4), coverage, mask


def test_matches_fp64_reference():
    m = CoverageAttention(6, 5, 7)
    query, keys, values, coverage, mask = inputs()
    out = m(query, keys, values, coverage=coverage, mask=mask)
    d = lambda t: t.double()  # noqa: E731
    hidden = torch.tanh(
        torch.einsum("aq,bq->ba", d(m.additive.query_proj.weight), d(query))[:, None]
        + torch.einsum("ak,bjk->bja", d(m.additive.key_proj.weight), d(keys)) + d(m.additive.key_proj.bias)
        + d(coverage)[..., None] * d(m.coverage_weight)
    )
    scores = torch.einsum("bja,a->bj", hidden, d(m.additive.v)).masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, -1)
    torch.testing.assert_close(out.weights.double(), weights, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.output.double(), torch.einsum("bj,bjd->bd", weights, d(values)), atol=1e-5, rtol=1e-5)


def test_gradcheck():
    m = CoverageAttention(6, 5, 3, fertility=2).double()
    query, keys, values, coverage, mask = inputs(batch=2, length=4)
    args = [t.double().requires_grad_(True) for t in (query, keys, values, coverage)]
    assert torch.autograd.gradcheck(lambda q, k, v, c: m(q, k, v, coverage=c, mask=mask).output, args)


def test_coverage_loss_matches_loop():
    weights = torch.softmax(torch.randn(2, 5, 6, dtype=torch.float64), -1)
    target_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    total, count = 0.0, 0
    for b in range(2):
        covered = torch.zeros(6, dtype=torch.float64)
        for i in range(5):
            if target_mask[b, i]:
                total += torch.minimum(weights[b, i], covered).sum()
                count += 1
            covered = covered + weights[b, i]
    torch.testing.assert_close(coverage_loss(weights, target_mask), total / count)


def test_decoder_state_adds_weights_over_fertility():
    mechanism = CoverageAttention(6, 5, 7, fertility=3)
    attention = DecoderAttention(mechanism)
    _, keys, _, _, mask = inputs()
    state = attention.init_state(keys, mask)
    phi = 3 * torch.sigmoid(mechanism.fertility_layer(keys)[..., 0])
    torch.testing.assert_close(state.fertility, phi)
    total = torch.zeros(3, 8)
    for _ in range(3):
        out, state = attention(torch.randn(3, 6), state)
        total = total + out.weights / phi
    torch.testing.assert_close(state.cumulative, total)


def test_bad_fertility():
    with pytest.raises(AttnlabError, match="fertility"):
        CoverageAttention(4, 4, fertility=-1)
