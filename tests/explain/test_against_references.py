"""Every method against an independent fp64 computation on a tiny GPT-2: HuggingFace's
GPT2LMHeadModel (its own forward, ``inputs_embeds``, ``output_attentions``, ``head_mask``)
holds the same weights as attnlab's GPT, the references are computed on it here.

Tolerances: fp64 throughout, 1e-9 where the two compute the same function, 1e-6 for the
integrated-gradients quadratures (512-point midpoint vs 24-point Gauss-Legendre).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from attnlab.apps.explain import gpt_predictions
from attnlab.apps.lm import LoadedLM
from attnlab.data.char_tokenizer import CharTokenizer
from attnlab.explain.heads import head_importance
from attnlab.explain.methods import METHODS
from attnlab.models.gpt import GPT

TEXT = "bad cab"


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    tokenizer = CharTokenizer.train(["abcd efg"])
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, bos_token_id=0, eos_token_id=0, n_positions=16, n_embd=12, n_layer=2, n_head=3,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    config._attn_implementation = "eager"  # its attention weights are the ones it multiplies by
    hf = transformers.GPT2LMHeadModel(config).double().eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.mul_(8 if p.dim() > 1 else 1)  # confident predictions, far from uniform attention
    ours = GPT.from_hf(hf).double().eval()
    (x,) = gpt_predictions(LoadedLM(ours, tokenizer), [TEXT])
    ids = torch.tensor([tokenizer.encode(TEXT)])
    target = int(hf(ids).logits[0, -1].argmax())
    return hf, x, ids, target


def hf_score(hf, embeds: torch.Tensor, target: int):
    out = hf(inputs_embeds=embeds, output_attentions=True)
    return torch.log_softmax(out.logits[:, -1], -1)[:, target], out.attentions


def hf_gradient(hf, embeds: torch.Tensor, target: int) -> torch.Tensor:
    embeds = embeds.clone().requires_grad_(True)
    score, _ = hf_score(hf, embeds, target)
    return torch.autograd.grad(score.sum(), embeds)[0]


def test_gradient_methods(models):
    hf, x, ids, target = models
    embeds = hf.transformer.wte(ids).detach()
    grad = hf_gradient(hf, embeds, target)[0]  # (L, D)
    torch.testing.assert_close(METHODS["saliency"](x), grad.norm(dim=-1), rtol=1e-9, atol=1e-12)
    delta = embeds[0] - hf.transformer.wte.weight.mean(0)
    torch.testing.assert_close(METHODS["grad_input"](x), (grad * delta).sum(-1), rtol=1e-9, atol=1e-12)


def test_integrated_gradients_against_gauss_legendre(models):
    hf, x, ids, target = models
    embeds, base = hf.transformer.wte(ids).detach()[0], hf.transformer.wte.weight.mean(0).detach()
    nodes, weights = np.polynomial.legendre.leggauss(24)
    total = torch.zeros_like(embeds)
    for t, w in zip((nodes + 1) / 2, weights / 2):
        total += w * hf_gradient(hf, (base + float(t) * (embeds - base))[None], target)[0]
    reference = ((embeds - base) * total).sum(-1)
    ours = METHODS["integrated_gradients"](x, steps=512)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


def test_integrated_gradients_completeness(models):
    """sum_j a_j = f(x) - f(baseline), within the midpoint rule's error at 128 steps."""
    _, x, _, _ = models
    attribution = METHODS["integrated_gradients"](x, steps=128)
    difference = x.score(x.inputs[None]) - x.score(x.baseline[None])
    assert abs(float(attribution.sum() - difference)) < 1e-3 * max(1.0, abs(float(difference)))


def test_attention_methods(models):
    hf, x, ids, target = models
    embeds = hf.transformer.wte(ids).detach().requires_grad_(False)
    with torch.enable_grad():
        score, maps = hf_score(hf, embeds, target)
        grads = torch.autograd.grad(score.sum(), maps)
    q = ids.shape[1] - 1
    a = [m[0].detach().numpy() for m in maps]  # (H, L, L) per layer
    np.testing.assert_allclose(METHODS["raw_attention"](x).numpy(), a[-1].mean(0)[q], rtol=1e-9, atol=1e-12)
    rolled = np.eye(len(a[0][0]))
    for layer in a:  # Abnar & Zuidema: 0.5 A + 0.5 I, rows renormalised, later layers on the left
        mixed = 0.5 * layer.mean(0) + 0.5 * np.eye(len(layer[0]))
        rolled = (mixed / mixed.sum(-1, keepdims=True)) @ rolled
    np.testing.assert_allclose(METHODS["rollout"](x).numpy(), rolled[q], rtol=1e-9, atol=1e-12)
    expected = np.clip(a[-1] * grads[-1][0].numpy(), 0, None).mean(0)[q]
    np.testing.assert_allclose(METHODS["attention_gradient"](x).numpy(), expected, rtol=1e-7, atol=1e-10)


def test_flow_against_a_linear_program(models):
    """Max flow as an LP (scipy's HiGHS), written from the definition: maximise the flow into
    (N, q) from (0, j), capacities Â, conservation at every inner node."""
    from scipy.optimize import linprog

    from attnlab.explain.rollout import mixed_layers

    _, x, ids, _ = models
    layers, n = [m.numpy() for m in mixed_layers(x)], ids.shape[1]
    edges = [(l, j, i, layers[l][i, j]) for l in range(len(layers)) for i in range(n) for j in range(n) if layers[l][i, j] > 0]
    ours = METHODS["flow"](x).numpy()
    for source in range(n):
        c = np.array([-(l == len(layers) - 1 and i == n - 1) for l, _, i, _ in edges], dtype=float)
        rows = []
        for level in range(1, len(layers)):
            for node in range(n):
                row = [(1.0 if (l == level - 1 and i == node) else 0.0) - (1.0 if (l == level and j == node) else 0.0)
                       for l, j, i, _ in edges]
                rows.append(row)
        bounds = [(0, 0) if l == 0 and j != source else (0, cap) for l, j, _, cap in edges]  # layer 0: only the source emits
        value = -linprog(c, A_eq=np.array(rows), b_eq=np.zeros(len(rows)), bounds=bounds, method="highs").fun
        assert abs(ours[source] - value) < 1e-5, (source, ours[source], value)  # capacities rounded to 1e-6


def test_head_masking_against_hf_without_that_head(models):
    """Masking head h = HF's GPT-2 with the rows of c_proj that read head h set to zero."""
    hf, x, ids, target = models
    importance = head_importance([x], x.module)
    embeds = hf.transformer.wte(ids).detach()
    base = -float(hf_score(hf, embeds, target)[0].detach())
    dh = 12 // 3
    for layer in range(2):
        for head in range(3):
            weight = hf.transformer.h[layer].attn.c_proj.weight  # Conv1D (in, out): rows read the heads
            saved = weight.detach().clone()
            with torch.no_grad():
                weight[head * dh:(head + 1) * dh] = 0
            expected = -float(hf_score(hf, embeds, target)[0].detach()) - base
            with torch.no_grad():
                weight.copy_(saved)
            assert abs(float(importance.masked[layer, head]) - expected) < 1e-9


def test_a_head_the_model_never_uses_scores_zero(models):
    _, x, _, _ = models
    model = x.module
    attention = model.blocks[1].self_attn
    saved = attention.out_proj.weight.detach().clone()
    with torch.no_grad():
        attention.out_proj.weight[:, 4:8] = 0  # head 1 of layer 1 never reaches the residual stream
    try:
        importance = head_importance([x], model)
    finally:
        with torch.no_grad():
            attention.out_proj.weight.copy_(saved)
    assert abs(float(importance.masked[1, 1])) < 1e-12 and abs(float(importance.gradient[1, 1])) < 1e-12
    assert float(importance.masked.abs().sum()) > 1e-3 and float(importance.gradient.abs().sum()) > 1e-3


def test_attention_gradient_of_an_fp32_model(models):
    """fp32 attention returns weights beside the flash kernel's output; the method still sees
    how the output uses them (computed in fp64), and the model is left in fp32."""
    _, x, _, _ = models
    expected = METHODS["attention_gradient"](x)
    model32 = GPT.from_hf(models[0]).float().eval()
    tokenizer = CharTokenizer.train(["abcd efg"])
    (x32,) = gpt_predictions(LoadedLM(model32, tokenizer), [TEXT])
    ours = METHODS["attention_gradient"](x32)
    assert float(expected.abs().max()) > 1e-3
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    assert all(p.dtype == torch.float32 for p in model32.parameters())
