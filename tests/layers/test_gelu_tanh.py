"""gelu_tanh (sigmoid form, own backward) against F.gelu(approximate="tanh") and fp64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlab.layers.gelu_tanh import gelu_tanh


def _inputs(dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    wide = torch.cat([torch.randn(4096, generator=g) * 3, torch.linspace(-12, 12, 801), torch.tensor([0.0, -0.0])])
    return wide.to(dtype).reshape(-1, 1).requires_grad_()


def test_forward_and_backward_match_the_fp64_reference():
    x = _inputs()
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    y = gelu_tanh(x)
    y.backward(grad)
    x64 = x.detach().double().requires_grad_()
    y64 = F.gelu(x64, approximate="tanh")
    y64.backward(grad.double())
    # fp32 rounding: PyTorch's own fp32 tanh kernel lands as far from fp64
    assert torch.allclose(y.double(), y64, rtol=2e-6, atol=2e-6)
    assert torch.allclose(x.grad.double(), x64.grad, rtol=2e-5, atol=2e-5)
    ours = (y.double() - y64).abs().max()
    torch_fp32 = (F.gelu(x.detach(), approximate="tanh").double() - y64).abs().max()
    assert ours <= 4 * torch_fp32 + 1e-7


def test_matches_torch_in_fp32_and_takes_torch_elsewhere():
    x = _inputs()
    y = gelu_tanh(x)
    assert y.grad_fn is not None and "SigmoidGeluTanh" in type(y.grad_fn).__name__
    assert torch.allclose(y, F.gelu(x, approximate="tanh"), rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        assert torch.equal(gelu_tanh(x), F.gelu(x, approximate="tanh"))  # inference: torch's kernel
    xb = _inputs(torch.bfloat16)
    assert torch.equal(gelu_tanh(xb), F.gelu(xb, approximate="tanh"))


@pytest.mark.parametrize("shape", [(3, 5, 7), (0, 4)])
def test_shapes_and_gradcheck(shape):
    x = torch.randn(shape, dtype=torch.float32, requires_grad=True)
    y = gelu_tanh(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad.shape == x.shape
    x64 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gelu_tanh(t.float()).double(), (x64,), eps=1e-3, atol=1e-3)
