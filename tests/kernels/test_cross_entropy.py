"""The row-block cross-entropy against the fp64 formula and against F.cross_entropy (the
plain path it replaces): loss and gradient, fp32 and bf16 logits, ignored rows, blocks
that do not divide N, an all-ignored batch, and the fallback for other inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlab.kernels import cross_entropy as ce
from attnlab.kernels.cross_entropy import cross_entropy


def _case(n=300, vocab=5000, dtype=torch.float32, ignored=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, vocab, generator=g) * 4).to(dtype).requires_grad_()
    target = torch.randint(0, vocab, (n,), generator=g)
    target[torch.rand(n, generator=g) < ignored] = -100
    return logits, target


def _fp64(logits, target, grad_scale):
    """The formula in fp64: mean of lse - z_t over counted rows; its gradient g/M (softmax - onehot)."""
    z = logits.detach().double()
    counted = target != -100
    lse = torch.logsumexp(z, -1)
    picked = z.gather(1, target.clamp_min(0)[:, None])[:, 0]
    m = counted.sum()
    loss = ((lse - picked) * counted).sum() / m
    onehot = F.one_hot(target.clamp_min(0), z.shape[1]).double()
    grad = (torch.softmax(z, -1) - onehot) * (counted[:, None] * grad_scale / m)
    return loss, grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_loss_and_gradient_match_fp64_and_the_plain_path(dtype, monkeypatch):
    monkeypatch.setattr(ce, "BLOCK_ELEMENTS", 7 * 5000)  # 7-row blocks: 300 = 42 * 7 + 6, a partial last block
    logits, target = _case(dtype=dtype)
    loss = cross_entropy(logits, target)
    assert type(loss.grad_fn).__name__ == "_BlockCrossEntropyBackward"
    (loss * 3.0).backward()
    ref_loss, ref_grad = _fp64(logits, target, 3.0)

    plain_logits = logits.detach().clone().requires_grad_()
    plain = F.cross_entropy(plain_logits.float(), target)  # the path it replaces (autocast's fp32 upcast)
    (plain * 3.0).backward()

    assert loss.dtype == torch.float32 and logits.grad.dtype == dtype
    # fp32 arithmetic on both: as close to fp64 as the plain path (loss ~8.5, gradients ~1e-3)
    assert abs(loss.double() - ref_loss) <= 4 * abs(plain.double() - ref_loss) + 2e-6
    ours = (logits.grad.double() - ref_grad).abs().max()
    theirs = (plain_logits.grad.double() - ref_grad).abs().max()
    assert ours <= 1.5 * theirs + 1e-9
    assert torch.allclose(logits.grad.double(), ref_grad, rtol=1e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-8)


def test_every_row_ignored_gives_nan_and_zero_gradient_like_pytorch():
    logits, target = _case(n=5, vocab=40)
    target[:] = -100
    loss = cross_entropy(logits, target)
    assert torch.isnan(loss) and torch.isnan(F.cross_entropy(logits, target))
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_other_inputs_take_the_plain_path():
    logits, target = _case(n=6, vocab=11)
    assert not ce.applies(logits.double(), target)
    assert not ce.applies(logits[None], target[None])  # 3-D logits
    loss = cross_entropy(logits.double(), target)
    assert loss.dtype == torch.float32 and "NllLoss" in type(loss.grad_fn).__name__
    assert torch.allclose(loss, F.cross_entropy(logits.float(), target))
