"""attnlab.kernels.linear: oneDNN's fp32 products (forward, dx; sgemm for dW) against
``F.linear`` in fp64, and the cases that must fall back to ``F.linear``.

Tolerance: the products sum up to 300 terms of N(0, 1) x N(0, 1) in fp32, so results
(of size ~sqrt(300) = 17) carry rounding of ~1e-6; atol 2e-5, rtol 1e-5.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnlab.kernels.linear as linear_module
from attnlab.kernels.linear import Linear, _onednn_available, linear, onednn_applies

pytestmark = pytest.mark.skipif(not _onednn_available(), reason="oneDNN's fp32 product needs an x86-64 CPU with AVX2")
TOL = dict(rtol=1e-5, atol=2e-5)


@pytest.fixture(autouse=True)
def every_shape_in_onednn(monkeypatch):
    """oneDNN for every product, on this CPU whatever its vendor (by default for large
    products only, see test_small_products_stay_in_sgemm, on the vendors where it is faster,
    see test_other_vendors_stay_in_sgemm)."""
    monkeypatch.setattr(linear_module, "MIN_MULTIPLY_ADDS", 1)
    monkeypatch.setattr(linear_module, "ONEDNN_VENDORS", (linear_module.cpu_vendor(),))


def _reference(x, weight, bias, grad):
    """F.linear in fp64: output and the gradients of x, weight, bias."""
    leaves = [t.detach().double().requires_grad_() for t in (x, weight) + ((bias,) if bias is not None else ())]
    out = F.linear(*leaves)
    out.backward(grad.double())
    return out, [t.grad for t in leaves]


@pytest.mark.parametrize("shape", [(7, 300), (2, 9, 64), (2, 3, 5, 33)])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_output_and_gradients_match_fp64(shape, with_bias, threads):
    g = torch.Generator().manual_seed(0)
    out_features = 48
    x = torch.randn(shape, generator=g, requires_grad=True)
    weight = torch.randn(out_features, shape[-1], generator=g, requires_grad=True)
    bias = torch.randn(out_features, generator=g, requires_grad=True) if with_bias else None
    grad = torch.randn(*shape[:-1], out_features, generator=g)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        y = linear(x, weight, bias)
        y.backward(grad)
    finally:
        torch.set_num_threads(previous)
    assert "OneDNNLinear" in type(y.grad_fn).__name__
    expected, expected_grads = _reference(x, weight, bias, grad)
    assert y.shape == expected.shape and y.dtype == torch.float32
    assert torch.allclose(y.double(), expected, **TOL)
    grads = [x.grad, weight.grad] + ([bias.grad] if with_bias else [])
    for got, want in zip(grads, expected_grads, strict=True):
        assert torch.allclose(got.double(), want, **TOL)


def test_only_the_needed_gradients_are_computed():
    x = torch.randn(4, 16)  # no gradient: the first layer's input, or a frozen encoder's
    weight = torch.randn(8, 16, requires_grad=True)
    bias = torch.randn(8)  # frozen
    linear(x, weight, bias).sum().backward()
    assert weight.grad is not None and x.grad is None and bias.grad is None
    assert torch.allclose(weight.grad, torch.ones(4, 8).t() @ x, **TOL)


def test_inference_skips_autograd_and_matches():
    x, weight, bias = torch.randn(5, 3, 32), torch.randn(16, 32, requires_grad=True), torch.randn(16)
    with torch.no_grad():
        y = linear(x, weight, bias)
    assert y.grad_fn is None
    assert torch.allclose(y, F.linear(x, weight, bias), **TOL)


def test_non_contiguous_input_and_gradient():
    base = torch.randn(16, 6, requires_grad=True)
    x = base.t()  # (6, 16), a transposed view
    weight = torch.randn(8, 16, requires_grad=True)
    y = linear(x, weight)
    grad = torch.randn(8, 6).t()  # a non-contiguous gradient
    y.backward(grad)
    expected, (grad_x, grad_weight) = _reference(x, weight, None, grad)
    assert torch.allclose(y.double(), expected, **TOL)
    assert torch.allclose(base.grad.t().double(), grad_x, **TOL)
    assert torch.allclose(weight.grad.double(), grad_weight, **TOL)


def test_a_weight_changed_in_place_is_seen():
    layer = Linear(16, 8)
    x = torch.randn(4, 16)
    first = layer(x)
    with torch.no_grad():
        layer.weight.mul_(2.0).add_(1.0)  # what an optimizer step does
    assert torch.allclose(layer(x), F.linear(x, layer.weight, layer.bias), **TOL)
    assert not torch.allclose(layer(x), first, **TOL)


def test_double_backward_matches_f_linear():
    """A gradient penalty differentiates the backward: it is recorded with plain products."""
    g = torch.Generator().manual_seed(3)
    inputs = [torch.randn(3, 5, 8, generator=g), torch.randn(4, 8, generator=g), torch.randn(4, generator=g)]
    penalties = []
    for fn in (linear, F.linear):
        x, weight, bias = (t.clone().requires_grad_() for t in inputs)
        (grad_x,) = torch.autograd.grad(fn(x, weight, bias).tanh().sum(), x, create_graph=True)
        grad_x.square().sum().backward()
        penalties.append([x.grad, weight.grad, bias.grad])
    for got, want in zip(*penalties, strict=True):
        assert torch.allclose(got, want, **TOL)


@pytest.mark.parametrize("case", ["bf16", "autocast", "native off", "strided weight", "empty", "vector"])
def test_other_inputs_take_f_linear(case, monkeypatch):
    x, weight, bias = torch.randn(4, 16), torch.randn(8, 16), torch.randn(8)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if case == "autocast" else torch.autocast("cpu", enabled=False)
    if case == "bf16":
        x, weight, bias = x.bfloat16(), weight.bfloat16(), bias.bfloat16()
    elif case == "native off":
        monkeypatch.setenv("ATTNLAB_NATIVE", "0")
    elif case == "strided weight":
        weight = torch.randn(16, 8).t()
    elif case == "empty":
        x = torch.randn(0, 16)
    elif case == "vector":
        x = torch.randn(16)
    with context:
        assert not onednn_applies(x, weight)
        got, want = linear(x, weight, bias), F.linear(x, weight, bias)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert torch.allclose(got.float(), want.float(), **TOL)


def test_linear_module_is_an_nn_linear_with_the_same_state_dict():
    torch.manual_seed(0)
    reference = nn.Linear(12, 5)
    ours = Linear(12, 5)
    ours.load_state_dict(reference.state_dict())
    assert isinstance(ours, nn.Linear) and list(ours.state_dict()) == ["weight", "bias"]
    x = torch.randn(2, 3, 12)
    assert torch.allclose(ours(x), reference(x), **TOL)
    assert torch.allclose(copy.deepcopy(ours)(x), reference(x), **TOL)


@pytest.mark.parametrize("failure", ["raises", "wrong result"])
def test_the_private_op_is_probed_before_use(failure, monkeypatch):
    """A future PyTorch where the op changed its signature or meaning falls back to F.linear."""
    def changed(x, weight, bias):
        if failure == "raises":
            raise RuntimeError("mkldnn::_linear_pointwise() expected 7 arguments")
        return F.linear(x, weight, bias) + 1.0

    original = linear_module._product
    monkeypatch.setattr(linear_module, "_product", changed)
    linear_module._onednn_available.cache_clear()
    try:
        x, weight = torch.randn(4, 16), torch.randn(8, 16)
        assert not onednn_applies(x, weight)
        assert torch.equal(linear(x, weight), F.linear(x, weight))
    finally:
        monkeypatch.setattr(linear_module, "_product", original)
        linear_module._onednn_available.cache_clear()
    assert onednn_applies(x, weight)


def test_small_products_stay_in_sgemm(monkeypatch):
    """oneDNN's ~10 us more per call loses below ~20M multiply-adds."""
    monkeypatch.setattr(linear_module, "MIN_MULTIPLY_ADDS", 1 << 25)
    weight = torch.randn(128, 128)
    assert not onednn_applies(torch.randn(2, 100, 128), weight)  # 200 x 128 x 128 = 3.3M
    assert onednn_applies(torch.randn(2, 1024, 128), weight)  # 2048 x 128 x 128 = 33.5M


def test_other_vendors_stay_in_sgemm(monkeypatch):
    """oneDNN's product was measured slower than sgemm on an Intel Xeon: only the vendors in
    ONEDNN_VENDORS take it, and elsewhere linear is F.linear bit for bit."""
    monkeypatch.setattr(linear_module, "MIN_MULTIPLY_ADDS", 1 << 25)
    x, weight, bias = torch.randn(2048, 256), torch.randn(256, 256), torch.randn(256)
    assert onednn_applies(x, weight)
    monkeypatch.setattr(linear_module, "ONEDNN_VENDORS", ("AnotherVendor",))
    assert not onednn_applies(x, weight)
    assert torch.equal(linear(x, weight, bias), F.linear(x, weight, bias))


def test_same_input_gives_identical_bits_on_every_call(monkeypatch):
    """The kernel is chosen from the inputs only, never from call history: calls 1..5 of one
    input, above the real size threshold, give identical outputs and gradients (a shape
    once moved from sgemm to oneDNN on its third product, so a resumed run differed)."""
    monkeypatch.setattr(linear_module, "MIN_MULTIPLY_ADDS", 1 << 25)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 512, 256, generator=g)  # 2048 x 256 x 256 = 134M multiply-adds
    weight, bias = torch.randn(256, 256, generator=g), torch.randn(256, generator=g)
    grad = torch.randn(4, 512, 256, generator=g)
    assert onednn_applies(x, weight)
    results = []
    for _ in range(5):
        leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
        out = linear(*leaves)
        out.backward(grad)
        with torch.no_grad():
            inference = linear(x, weight, bias)
        results.append([out.detach(), inference, *(t.grad for t in leaves)])
    for later in results[1:]:
        for got, first in zip(later, results[0]):
            assert torch.equal(got, first)
    assert "OneDNN" in type(linear(x, weight.requires_grad_()).grad_fn).__name__
    small = torch.randn(200, 256, generator=g)
    assert all(type(linear(small, weight).grad_fn).__name__ != "_OneDNNLinearBackward" for _ in range(5))
