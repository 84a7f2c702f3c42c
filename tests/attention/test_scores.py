"""Score functions against fp64 einsum formulas, gradcheck, and the memory-bounded additive path.

Tolerances: fp64 formulas 1e-12; chunked vs materialised additive score in fp32 1e-5
(outputs) and 1e-4 (gradients, summed in a different order).
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from attnlab.attention import (
    additive_score,
    concat_score,
    dot_score,
    general_score,
    scaled_dot_score,
)
from attnlab.attention.scores import materialised_additive_score
from attnlab.errors import AttnlabError

DOUBLE = torch.float64


def rand(*shape, seed=0, dtype=DOUBLE, grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(grad)


def additive_reference(q, k, v, b=None):
    """v^T tanh(q_i + k_j + b) with an explicit (..., Lq, Lk, H) einsum."""
    b = torch.zeros_like(v) if b is None else b
    hidden = torch.tanh(q[..., :, None, :] + k[..., None, :, :] + b)
    return torch.einsum("...ijh,h->...ij", hidden, v)


def test_dot_and_scaled_against_einsum():
    q, k = rand(2, 3, 5, 8), rand(2, 3, 7, 8, seed=1)
    expected = torch.einsum("...id,...jd->...ij", q, k)
    torch.testing.assert_close(dot_score(q, k), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(scaled_dot_score(q, k), expected / 8**0.5, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(scaled_dot_score(q, k, scale=0.3), 0.3 * expected, rtol=1e-12, atol=1e-12)


def test_general_against_einsum():
    q, k, w = rand(2, 5, 6), rand(2, 7, 4, seed=1), rand(6, 4, seed=2)
    expected = torch.einsum("bid,de,bje->bij", q, w, k)
    torch.testing.assert_close(general_score(q, k, w), expected, rtol=1e-12, atol=1e-12)


def test_concat_against_explicit_concatenation():
    q, k = rand(2, 5, 6), rand(2, 7, 4, seed=1)
    w, v = rand(9, 10, seed=2), rand(9, seed=3)
    pairs = torch.cat([q[:, :, None, :].expand(-1, -1, 7, -1), k[:, None, :, :].expand(-1, 5, -1, -1)], dim=-1)
    expected = torch.einsum("bijh,h->bij", torch.tanh(torch.einsum("bijc,hc->bijh", pairs, w)), v)
    torch.testing.assert_close(concat_score(q, k, w, v), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("budget", [1, 2**30])  # one query per block / all queries in one block
def test_additive_against_einsum(with_bias, budget):
    q, k, v = rand(2, 3, 5, 8), rand(3, 7, 8, seed=1), rand(8, seed=2)  # keys broadcast over dim 0
    b = rand(8, seed=3) if with_bias else None
    out = additive_score(q, k, v, b, memory_budget=budget)
    assert out.shape == (2, 3, 5, 7)
    torch.testing.assert_close(out, additive_reference(q, k, v, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "name,fn,shapes",
    [
        ("dot", dot_score, [(2, 4, 5), (2, 6, 5)]),
        ("scaled", scaled_dot_score, [(2, 4, 5), (2, 6, 5)]),
        ("general", general_score, [(2, 4, 5), (2, 6, 3), (5, 3)]),
        ("concat", concat_score, [(2, 4, 5), (2, 6, 3), (7, 8), (7,)]),
        ("additive", additive_score, [(2, 4, 5), (2, 6, 5), (5,), (5,)]),
        ("additive_chunked", lambda q, k, v: additive_score(q, k, v, memory_budget=1), [(2, 4, 5), (2, 6, 5), (5,)]),
    ],
)
def test_gradcheck(name, fn, shapes):
    inputs = [rand(*s, seed=i, grad=True) for i, s in enumerate(shapes)]
    assert torch.autograd.gradcheck(fn, inputs), name


@pytest.mark.parametrize("dtype,tol", [(torch.float32, (1e-5, 1e-4)), (DOUBLE, (1e-12, 1e-12))])
@pytest.mark.parametrize("chunk", [1, 4, 13])  # one query, a chunk that does not divide Lq, all queries
def test_chunked_equals_materialised_with_gradients(dtype, tol, chunk):
    budget = chunk * 3 * 11 * 16 * torch.finfo(dtype).bits // 8  # chunk * bytes of one query's (N, Lk, H)
    q, k, v, b = (rand(*s, seed=i, dtype=dtype, grad=True) for i, s in enumerate([(3, 13, 16), (3, 11, 16), (16,), (16,)]))
    upstream = rand(3, 13, 11, seed=9, dtype=dtype)
    results = []
    for chunked in (False, True):
        out = additive_score(q, k, v, b, memory_budget=budget) if chunked else materialised_additive_score(q + b, k, v)
        grads = torch.autograd.grad(out, (q, k, v, b), upstream)
        results.append((out, *grads))
    for ours, ref in zip(*results):
        torch.testing.assert_close(ours, ref, rtol=tol[0], atol=tol[1])


def test_additive_bf16_as_accurate_as_the_textbook_form():
    q, k = rand(2, 16, 32), rand(2, 24, 32, seed=1)
    v = rand(32, seed=2) * 0.1 + 0.05  # a v with a large sum, where (2v)^T s - sum(v) would cancel
    reference = additive_reference(q, k, v)
    ours = additive_score(q.bfloat16(), k.bfloat16(), v.bfloat16())
    textbook = materialised_additive_score(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert ours.dtype == torch.bfloat16
    error, textbook_error = ((x.double() - reference).abs().max() for x in (ours, textbook))
    assert error <= 1.5 * textbook_error + 1e-3, (error, textbook_error)


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of bytes any op produced."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out


def test_chunked_additive_stays_within_budget():
    b, lq, lk, h, budget = 2, 256, 256, 32, 2**20  # the (B, Lq, Lk, H) block would be 16 MiB
    q, k, v = (rand(*s, seed=i, dtype=torch.float32, grad=True) for i, s in enumerate([(b, lq, h), (b, lk, h), (h,)]))
    with _LargestTensor() as plain:
        materialised_additive_score(q, k, v).sum().backward()
    with _LargestTensor() as chunked:
        additive_score(q, k, v, memory_budget=budget).sum().backward()
    assert plain.largest == b * lq * lk * h * 4
    # The biggest tensors left are the (B, Lq, Lk) scores and their gradient.
    assert chunked.largest <= max(budget, b * lq * lk * 4), chunked.largest


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: dot_score(rand(2, 3, 4), rand(2, 5, 6)), "keys must have last dim 4"),
        (lambda: dot_score(rand(4), rand(2, 5, 4)), r"query must have shape \(\.\.\., L, D\)"),
        (lambda: dot_score(rand(2, 3, 4), rand(2, 5, 4, dtype=torch.float32)), "share dtype"),
        (lambda: general_score(rand(2, 3, 4), rand(2, 5, 6), rand(4, 5)), "keys must have last dim 5"),
        (lambda: general_score(rand(2, 3, 4), rand(2, 5, 6), rand(4)), r"weight must have shape \(Dq, Dk\)"),
        (lambda: concat_score(rand(2, 3, 4), rand(2, 5, 6), rand(7, 9), rand(7)), r"\(H, Dq \+ Dk\) = \(H, 10\)"),
        (lambda: additive_score(rand(2, 3, 4), rand(2, 5, 4), rand(5)), r"v must have shape \(H,\) = \(4,\)"),
        (lambda: additive_score(rand(2, 3, 4), rand(2, 5, 4), rand(4), rand(3)), r"bias must have shape \(H,\)"),
        (lambda: additive_score(rand(2, 3, 4), rand(2, 5, 3), rand(4)), "keys must have last dim 4"),
    ],
)
def test_clear_errors(call, match):
    with pytest.raises(AttnlabError, match=match):
        call()
