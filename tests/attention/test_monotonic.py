"""Monotonic attention against an fp64 reference of Raffel et al.'s expected alignment, and
TensorFlow Addons' modes: parallel == recursive, hard-mode properties, finite gradients."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.attention import AdditiveAttention, LuongAttention, monotonic_attention
from attnlab.attention.monotonic import MonotonicAttention, initial_alignment, linear_recurrence
from attnlab.errors import AttnlabError


def reference(p: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """a_ij = p_ij sum_{k<=j} a_{i-1,k} prod_{k<=l<j} (1 - p_il), in fp64 loops."""
    p, previous = p.double(), previous.double()
    out = torch.zeros_like(p)
    for b in range(p.shape[0]):
        for j in range(p.shape[1]):
            total = 0.0
            for k in range(j + 1):
                total += previous[b, k] * torch.prod(1 - p[b, k:j])
            out[b, j] = p[b, j] * total
    return out


def random_inputs(batch=3, length=7, dtype=torch.float64):
    p = torch.rand(batch, length, dtype=dtype) * 0.9 + 0.05
    previous = torch.softmax(torch.randn(batch, length, dtype=dtype), -1) * 0.9  # rows sum <= 1
    return p, previous


@pytest.mark.parametrize("mode", ["parallel", "recursive"])
def test_matches_fp64_reference(mode):
    p, previous = random_inputs(dtype=torch.float32)
    got = monotonic_attention(p, previous, mode)
    torch.testing.assert_close(got.double(), reference(p, previous), atol=1e-5, rtol=1e-5)


def test_parallel_equals_recursive():
    p, previous = random_inputs(batch=4, length=20)
    torch.testing.assert_close(monotonic_attention(p, previous, "parallel"),
                               monotonic_attention(p, previous, "recursive"), atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("mode", ["parallel", "recursive"])
def test_rows_sum_to_at_most_one(mode):
    p, _ = random_inputs(batch=5, length=12)
    attention = initial_alignment(5, 12, dtype=torch.float64)
    for _ in range(6):  # a few decoder steps
        attention = monotonic_attention(p, attention, mode)
        assert (attention >= 0).all() and (attention.sum(-1) <= 1 + 1e-12).all()


def test_hard_mode_attends_to_first_chosen_after_previous():
    p = torch.tensor([[1.0, 0, 1, 0, 1, 0], [0, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]])
    previous = torch.zeros(3, 6)
    previous[0, 1] = previous[1, 2] = previous[2, 2] = 1.0
    got = monotonic_attention(p, previous, "hard")
    want = torch.zeros(3, 6)
    want[0, 2] = 1.0  # first p=1 at or after position 1
    want[2, 2] = 1.0  # staying put is allowed
    torch.testing.assert_close(got, want)  # row 1: nothing chosen after 2 -> all zeros


def test_hard_mode_equals_soft_modes_on_binary_p():
    p = (torch.rand(4, 9) > 0.6).double()
    previous = torch.nn.functional.one_hot(torch.randint(0, 9, (4,)), 9).double()
    hard = monotonic_attention(p, previous, "hard")
    torch.testing.assert_close(hard, monotonic_attention(p, previous, "recursive"))
    assert ((hard == 0) | (hard == 1)).all() and (hard.sum(-1) <= 1).all()


@pytest.mark.parametrize("case", ["soft p", "soft previous", "two-hot previous"])
def test_hard_mode_refuses_probabilities(case):
    """Hard mode is defined on 0/1 choices (TF Addons: "p_choose_i ... all either 0 or 1");
    what it computes on probabilities is not an alignment: a clear error, not a number."""
    p, previous = torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    if case == "soft p":
        p = torch.tensor([[0.2, 0.7, 1.0]])
    elif case == "soft previous":
        previous = torch.tensor([[0.5, 0.5, 0.0]])
    else:
        previous = torch.tensor([[1.0, 1.0, 0.0]])
    with pytest.raises(AttnlabError, match="mode='hard'"):
        monotonic_attention(p, previous, "hard")
    monotonic_attention(p.round(), torch.tensor([[1.0, 0.0, 0.0]]), "hard")  # 0/1: fine


def test_finite_gradients_at_saturated_p():
    p = torch.tensor([[0.0, 1.0, 1e-12, 1 - 1e-7, 0.5, 1.0, 0.0]], dtype=torch.float32, requires_grad=True)
    previous = torch.tensor([[0.2, 0.3, 0.0, 0.0, 0.5, 0.0, 0.0]])
    out = monotonic_attention(p, previous, "parallel")
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(p.grad).all()


def test_linear_recurrence_scan_equals_the_loop():
    decay, x = torch.rand(3, 37, dtype=torch.float64), torch.randn(3, 37, dtype=torch.float64)
    q, want = torch.zeros(3, dtype=torch.float64), []
    for j in range(37):
        q = decay[:, j] * q + x[:, j]
        want.append(q)
    torch.testing.assert_close(linear_recurrence(decay, x), torch.stack(want, 1), atol=1e-12, rtol=1e-12)


def test_parallel_where_the_cumulative_product_underflows():
    """The issue's case: TFA's closed form (cumprod clamped to 1e-10) gave 0.0091, not 0.5."""
    for dtype in (torch.float32, torch.float64):
        p = torch.full((1, 40), 0.5, dtype=dtype)
        previous = torch.zeros(1, 40, dtype=dtype)
        previous[0, -1] = 1.0
        assert monotonic_attention(p, previous, "parallel")[0, -1].item() == pytest.approx(0.5, abs=1e-6)
        torch.testing.assert_close(monotonic_attention(p, previous, "parallel"),
                                   monotonic_attention(p, previous, "recursive"), atol=1e-6, rtol=0)


P_VALUES = st.one_of(st.sampled_from([0.0, 1.0, 0.5, 1e-12, 1 - 1e-7, 0.999, 1e-3]), st.floats(0.0, 1.0))


@st.composite
def monotonic_case(draw):
    b, length = draw(st.integers(0, 3)), draw(st.integers(0, 70))
    p = torch.tensor(draw(st.lists(P_VALUES, min_size=b * length, max_size=b * length)), dtype=torch.float64)
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    where = draw(st.sampled_from(["random", "end", "start", "one-hot"]))
    previous = torch.softmax(3 * torch.randn(b, length, generator=gen, dtype=torch.float64), -1)
    if where != "random" and length:
        previous = torch.zeros(b, length, dtype=torch.float64)
        index = {"end": length - 1, "start": 0}.get(where, draw(st.integers(0, length - 1)))
        previous[:, index] = 1.0
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return p.view(b, length).to(dtype), previous.to(dtype)


@settings(max_examples=200, deadline=None)
@given(monotonic_case())
def test_parallel_equals_recursive_everywhere(case):
    """p exactly 0 or 1, products that underflow, alignments at the end, empty memory:
    parallel equals recursive within 1e-5, values and gradients (both finite)."""
    p, previous = case
    results = []
    for mode in ("parallel", "recursive"):
        leaves = [p.clone().requires_grad_(), previous.clone().requires_grad_()]
        out = monotonic_attention(*leaves, mode)
        weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view(out.shape)
        (out * weights).sum().backward()
        results.append([out, leaves[0].grad, leaves[1].grad])
    for got, want in zip(*results):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_gradcheck_parallel():
    p, previous = random_inputs(batch=2, length=5)
    p.requires_grad_(True)
    previous.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: monotonic_attention(a, b, "parallel"), (p, previous))


def test_bad_mode_and_shapes():
    p, previous = random_inputs()
    with pytest.raises(AttnlabError, match="mode"):
        monotonic_attention(p, previous, "soft")
    with pytest.raises(AttnlabError, match="p_choose"):
        monotonic_attention(p, previous[:, :-1])


@pytest.mark.parametrize("energy", ["bahdanau", "luong"])
def test_module_energy_training_and_hard_inference(energy):
    torch.manual_seed(1)
    module = MonotonicAttention(6, 5, 4, energy=energy, sigmoid_noise=0.0, score_bias_init=0.5).double()
    query, keys, values = torch.randn(3, 6).double(), torch.randn(3, 7, 5).double(), torch.randn(3, 7, 2).double()
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    previous = initial_alignment(3, 7, dtype=torch.float64)
    scorer = module.energy
    assert isinstance(scorer, AdditiveAttention if energy == "bahdanau" else LuongAttention)
    # fp64 reference of the energy: Bahdanau v^T tanh(W_q q + W_k k); Luong q^T W k
    if energy == "bahdanau":
        hidden = torch.tanh(torch.einsum("hq,bq->bh", scorer.query_proj.weight, query)[:, None]
                            + torch.einsum("hk,bjk->bjh", scorer.key_proj.weight, keys))
        scores = torch.einsum("bjh,h->bj", hidden, scorer.v)
    else:
        scores = torch.einsum("bq,qk,bjk->bj", query, scorer.key_proj.weight, keys)
    p = torch.sigmoid(scores + module.score_bias) * mask
    out = module(query, keys, values, previous=previous, mask=mask)
    want = reference(p, previous)
    torch.testing.assert_close(out.weights, want)
    torch.testing.assert_close(out.output, torch.einsum("bj,bjd->bd", want, values))
    module.eval()
    hard = module(query, keys, values, previous=previous, mask=mask).weights
    torch.testing.assert_close(hard, monotonic_attention(((scores + module.score_bias) > 0).double() * mask,
                                                         previous, "hard"))
    assert (hard[1, 4:] == 0).all()


@pytest.mark.parametrize("mode", ["parallel", "recursive", "hard"])
@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (0, 0)])
def test_empty_in_empty_out(mode, shape):
    p, previous = torch.rand(shape), torch.rand(shape)
    assert monotonic_attention(p, previous, mode).shape == shape


def test_integer_and_mixed_dtypes_are_clear_errors():
    with pytest.raises(AttnlabError, match="floating-point dtype"):
        monotonic_attention(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(AttnlabError, match="floating-point dtype"):
        monotonic_attention(torch.rand(2, 3, dtype=torch.float64), torch.rand(2, 3))
