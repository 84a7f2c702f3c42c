"""An input gradient computes no weight gradient: the model's parameters are frozen while it
runs (attnlab's oneDNN linear map is an autograd Function, which would otherwise compute
``dy^T x`` for every weight), the gradient is the same, and the parameters are restored."""

from __future__ import annotations

import torch

from attnlab.apps.explain import gpt_predictions
from attnlab.apps.lm import LoadedLM
from attnlab.data.char_tokenizer import CharTokenizer
from attnlab.explain.explainable import Explainable
from attnlab.models.gpt import GPT, GPTConfig

TEXT = "abcd efg " * 16  # 144 tokens: the 256 x 1024 feed-forward maps are large enough for oneDNN


def explainable() -> tuple[Explainable, GPT]:
    torch.manual_seed(0)
    tokenizer = CharTokenizer.train([TEXT])
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=256, num_layers=2, num_heads=4,
                          d_model=256, dropout=0.0, attention_dropout=0.0)).eval()
    (x,) = gpt_predictions(LoadedLM(model, tokenizer), [TEXT])
    return x, model


def test_input_gradient_runs_with_frozen_parameters_and_equals_the_plain_one():
    x, model = explainable()
    seen = []
    run = x.run

    def spying(e, need_weights):
        seen.append([p.requires_grad for p in model.parameters()])
        return run(e, need_weights)

    x.run = spying
    e = x.inputs[None].expand(2, -1, -1) * torch.tensor([1.0, 0.5])[:, None, None]
    score, grad = x.gradient(e)
    assert seen and not any(any(flags) for flags in seen)  # no weight gradient was possible
    assert all(p.requires_grad for p in model.parameters()) and all(p.grad is None for p in model.parameters())

    plain = e.detach().requires_grad_(True)  # the same gradient, the parameters left as they are
    want = torch.autograd.grad(run(plain, False)[0].sum(), plain)[0]
    torch.testing.assert_close(grad, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))  # fp32, kernels may differ
    torch.testing.assert_close(score, run(e, False)[0].detach(), rtol=1e-5, atol=1e-5)


def test_parameters_are_restored_when_the_forward_fails():
    x, model = explainable()
    model.final_norm.weight.requires_grad_(False)  # a parameter frozen by the user stays frozen

    def failing(e, need_weights):
        raise RuntimeError("boom")

    x.run = failing
    try:
        x.gradient(x.inputs[None])
    except RuntimeError:
        pass
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    assert flags.pop("final_norm.weight") is False and all(flags.values())
