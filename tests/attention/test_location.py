"""Location-sensitive attention against an fp64 einsum reference (Chorowski et al. 2015 /
Tacotron 2), masking, gradcheck, and the cumulative weights the decoder carries."""

import torch
import torch.nn.functional as F

from attnlab.attention import LocationSensitiveAttention
from attnlab.models.seq2seq_attention import DecoderAttention


def reference(m, query, keys, values, previous, cumulative, mask):
    """e_j = v^T tanh(W q + V h_j + U (F * [prev; cum])_j), softmax over allowed j, in fp64."""
    conv = m.location_conv.weight.double()  # (C, 2, K)
    k = conv.shape[-1]
    stacked = F.pad(torch.stack([previous, cumulative], 1).double(), (k // 2, k // 2))  # (B, 2, Lk + K - 1)
    windows = stacked.unfold(2, k, 1)  # (B, 2, Lk, K)
    features = torch.einsum("cik,bijk->bjc", conv, windows)  # (B, Lk, C)
    hidden = torch.tanh(
        torch.einsum("aq,bq->ba", m.additive.query_proj.weight.double(), query.double())[:, None]
        + torch.einsum("ak,bjk->bja", m.additive.key_proj.weight.double(), keys.double())
        + torch.einsum("ac,bjc->bja", m.location_dense.weight.double(), features)
    )
    scores = torch.einsum("bja,a->bj", hidden, m.additive.v.double()).masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, -1)
    return torch.einsum("bj,bjd->bd", weights, values.double()), weights


def inputs(batch=3, length=9):
    query, keys, values = torch.randn(batch, 6), torch.randn(batch, length, 5), torch.randn(batch, length, 4)
    previous = torch.softmax(torch.randn(batch, length), -1)
    cumulative = previous + torch.softmax(torch.randn(batch, length), -1)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[0, 6:] = False
    return query, keys, values, previous, cumulative, mask


def test_matches_fp64_reference_with_mask():
    m = LocationSensitiveAttention(6, 5, 8, n_filters=4, kernel_size=5)
    query, keys, values, previous, cumulative, mask = inputs()
    out = m(query, keys, values, previous=previous, cumulative=cumulative, mask=mask)
    want_out, want_w = reference(m, query, keys, values, previous, cumulative, mask)
    torch.testing.assert_close(out.weights.double(), want_w, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.output.double(), want_out, atol=1e-5, rtol=1e-5)
    assert (out.weights[0, 6:] == 0).all()
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(3))


def test_precomputed_keys_give_the_same_result():
    m = LocationSensitiveAttention(6, 5, 8, n_filters=4, kernel_size=3)
    query, keys, values, previous, cumulative, mask = inputs()
    a = m(query, keys, values, previous=previous, cumulative=cumulative, mask=mask)
    b = m(query, keys, values, previous=previous, cumulative=cumulative, mask=mask,
          projected_keys=m.precompute_keys(keys))
    torch.testing.assert_close(a.output, b.output)


def test_gradcheck():
    m = LocationSensitiveAttention(6, 5, 4, n_filters=2, kernel_size=3).double()
    query, keys, values, previous, cumulative, mask = (t.double() if t.is_floating_point() else t
                                                        for t in inputs(batch=2, length=5))
    args = [t.requires_grad_(True) for t in (query, keys, values, previous, cumulative)]

    def f(q, k, v, p, c):
        return m(q, k, v, previous=p, cumulative=c, mask=mask).output

    assert torch.autograd.gradcheck(f, args)


def test_convolution_sees_previous_and_cumulative_weights():
    m = LocationSensitiveAttention(6, 5, 8, n_filters=4, kernel_size=5)
    query, keys, values, previous, cumulative, mask = inputs()
    base = m(query, keys, values, previous=previous, cumulative=cumulative, mask=mask).weights
    moved = m(query, keys, values, previous=previous.roll(2, -1), cumulative=cumulative, mask=mask).weights
    covered = m(query, keys, values, previous=previous, cumulative=cumulative * 3, mask=mask).weights
    assert (base - moved).abs().max() > 1e-4 and (base - covered).abs().max() > 1e-4


def test_decoder_state_accumulates_weights():
    mechanism = LocationSensitiveAttention(6, 5, 8, n_filters=4, kernel_size=5)
    attention = DecoderAttention(mechanism)
    keys = torch.randn(2, 7, 5)
    mask = torch.ones(2, 7, dtype=torch.bool)
    state = attention.init_state(keys, mask)
    assert (state.previous == 0).all() and (state.cumulative == 0).all()
    history = []
    for _ in range(3):
        out, state = attention(torch.randn(2, 6), state)
        history.append(out.weights)
    torch.testing.assert_close(state.previous, history[-1])
    torch.testing.assert_close(state.cumulative, sum(history))
    assert state.step == 3
