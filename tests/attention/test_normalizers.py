"""Normalizers: sparsemax against its definition (projection onto the simplex), hardmax,
and sampling's log-probabilities. Tolerances: fp64 1e-10, fp32 1e-6."""

import itertools

import torch

from attnlab.attention import attend, hardmax, safe_softmax, sample, sparsemax


def _project_to_simplex_bruteforce(z: torch.Tensor) -> torch.Tensor:
    """Euclidean projection by trying every support set (fine for tiny sizes)."""
    best, best_dist = None, float("inf")
    n = z.numel()
    for k in range(1, n + 1):
        for support in itertools.combinations(range(n), k):
            idx = torch.tensor(support)
            tau = (z[idx].sum() - 1) / k
            p = torch.zeros_like(z)
            p[idx] = z[idx] - tau
            if (p[idx] >= 0).all():
                dist = float(((p - z) ** 2).sum())
                if dist < best_dist:
                    best, best_dist = p, dist
    return best


def test_sparsemax_is_the_simplex_projection():
    z = torch.randn(20, 5, dtype=torch.float64) * 2
    got = sparsemax(z)
    for row, out in zip(z, got):
        torch.testing.assert_close(out, _project_to_simplex_bruteforce(row), atol=1e-10, rtol=0)


def test_sparsemax_ignores_blocked_entries_and_is_sparse():
    z = torch.tensor([[3.0, 2.9, float("-inf"), -5.0]])
    w = sparsemax(z)
    assert w[0, 2] == 0 and w[0, 3] == 0
    torch.testing.assert_close(w.sum(-1), torch.ones(1))


def test_sparsemax_gradcheck():
    z = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sparsemax, (z,))


def test_safe_softmax_matches_softmax_and_zeroes_empty_rows():
    z = torch.randn(4, 7, dtype=torch.float64)
    torch.testing.assert_close(safe_softmax(z), torch.softmax(z, -1))
    z[1] = float("-inf")
    z.requires_grad_(True)
    w = safe_softmax(z)
    assert torch.equal(w[1], torch.zeros(7, dtype=torch.float64))
    (w * torch.randn_like(w)).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_hardmax_one_hot_at_argmax():
    z = torch.randn(5, 9)
    w = hardmax(z)
    assert torch.equal(w.argmax(-1), z.argmax(-1))
    assert torch.equal(w.sum(-1), torch.ones(5))


def test_sample_log_prob_and_frequencies():
    z = torch.tensor([[0.0, 1.0, 2.0, -1.0]]).expand(20000, 4).contiguous()
    gen = torch.Generator().manual_seed(0)
    one_hot, log_prob = sample(z, gen)
    probs = torch.softmax(z[0], -1)
    index = one_hot.argmax(-1)
    torch.testing.assert_close(log_prob, probs.log()[index])
    freq = one_hot.mean(0)
    # 20k draws: standard error <= 0.0036; allow 5 sigma.
    torch.testing.assert_close(freq, probs, atol=0.018, rtol=0)


def test_sample_log_prob_is_differentiable_for_reinforce():
    scores = torch.randn(3, 5, requires_grad=True)
    out = attend(scores, torch.randn(3, 5, 2), normalizer="sample", generator=torch.Generator().manual_seed(1))
    out.log_prob.sum().backward()
    # d log p_j / d s = onehot_j - softmax(s)
    expected = out.weights - torch.softmax(scores.detach(), -1)
    torch.testing.assert_close(scores.grad, expected)
