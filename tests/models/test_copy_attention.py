"""Copy attention (pointer-generator): the mixture against an independent fp64 computation,
a planted model whose whole output is the copy, the cached decoding steps against the full
forward, beam search, gradients to the gate, save/load, and the configuration's checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from attnlab.errors import AttnlabError
from attnlab.evaluation.decoding import beam_search, greedy_search
from attnlab.models import Transformer, TransformerConfig
from attnlab.models.copy_attention import copy_log_probs, smoothed_nll
from attnlab.models.transformer import TRANSFORMER_PRESETS

V = 40


def _model(seed: int = 0, **overrides) -> Transformer:
    torch.manual_seed(seed)
    config = dataclasses.replace(TRANSFORMER_PRESETS["tiny"], src_vocab_size=V, tgt_vocab_size=V, dropout=0.0,
                                 copy_attention=True, share_embeddings=True, **overrides)
    return Transformer(config).eval()


def _batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, V, (3, 7), generator=g)
    src[1, 5:] = 0  # padding
    src[2, 2] = src[2, 4]  # a repeated source token: its attention adds up
    tgt = torch.randint(4, V, (3, 5), generator=g)
    tgt[:, 0] = 2
    return src, tgt


def test_copy_log_probs_against_fp64_sum_of_the_two_distributions():
    g = torch.Generator().manual_seed(0)
    logits, gate = torch.randn(2, 3, 11, generator=g), torch.randn(2, 3, 1, generator=g)
    attention = torch.softmax(torch.randn(2, 3, 4, generator=g), -1)
    src = torch.tensor([[5, 7, 5, 1], [0, 2, 3, 10]])
    got = copy_log_probs(logits, gate, attention, src)
    d = logits.double()
    p_gen = torch.sigmoid(gate.double())
    expected = p_gen * torch.softmax(d, -1)
    for b in range(2):
        for t in range(3):
            for j in range(4):
                expected[b, t, src[b, j]] += (1 - p_gen[b, t, 0]) * attention[b, t, j].double()
    assert torch.allclose(got.double().exp(), expected, atol=1e-7, rtol=1e-6)
    assert torch.allclose(got.exp().sum(-1), torch.ones(2, 3), atol=1e-6)


def test_gradients_equal_the_dense_mixture_with_repeated_source_tokens():
    """Written only at the first of repeated source tokens: the gradients are those of the
    dense formula (every vocabulary entry mixed), in fp64, to 1e-10."""
    g = torch.Generator().manual_seed(3)
    src = torch.tensor([[5, 7, 5, 5, 1], [0, 2, 3, 10, 0]])

    def inputs():
        return (torch.randn(2, 3, 11, generator=g, dtype=torch.float64).requires_grad_(),
                torch.randn(2, 3, 1, generator=g, dtype=torch.float64).requires_grad_(),
                torch.randn(2, 3, 5, generator=g, dtype=torch.float64).requires_grad_())

    def dense(logits, gate, scores):
        attention = torch.softmax(scores, -1)
        copy = torch.zeros_like(logits).scatter_add(-1, src[:, None, :].expand(2, 3, -1), attention)
        p = torch.sigmoid(gate) * torch.softmax(logits, -1) + torch.sigmoid(-gate) * copy
        return p.log()

    a = inputs()
    b = tuple(x.detach().clone().requires_grad_() for x in a)
    weights = torch.randn(2, 3, 11, generator=g, dtype=torch.float64)
    (copy_log_probs(a[0], a[1], torch.softmax(a[2], -1), src) * weights).sum().backward()
    (dense(*b) * weights).sum().backward()
    for x, y in zip(a, b):
        assert torch.allclose(x.grad, y.grad, atol=1e-10)


def test_forward_is_the_mixture_of_its_own_parts_in_fp64():
    model = _model().double()
    src, tgt = _batch()
    out = model(src, tgt, need_weights=True)
    last = out.attentions[f"decoder.{model.config.num_decoder_layers - 1}.cross"].mean(dim=1)  # (B, T, S)
    model.copy_gate = None  # the same weights without the copy: the vocabulary logits
    plain = model(src, tgt).logits
    gate = torch.sigmoid(_model().double().copy_gate(_hidden(model, src, tgt)))
    p = gate * torch.softmax(plain, -1)
    p = p + (1 - gate) * torch.zeros_like(p).scatter_add(-1, src[:, None, :].expand(-1, tgt.shape[1], -1), last)
    assert torch.allclose(out.logits.exp(), p, atol=1e-10)


def _hidden(model: Transformer, src, tgt):
    memory, mask, _ = model.encode(src)
    hidden, _, _ = model.stack.decode(model.embed(tgt, model.tgt_embed), memory, mask)
    return hidden


def test_a_planted_gate_that_only_copies_puts_the_attention_on_source_tokens():
    model = _model()
    with torch.no_grad():
        model.copy_gate.proj.weight.zero_()
        model.copy_gate.proj.bias.fill_(-60.0)  # g = sigmoid(-60): every bit of mass is copied
    src, tgt = _batch()
    probs = model(src, tgt).logits.exp()  # (B, T, V)
    for b in range(src.shape[0]):
        outside = torch.ones(V, dtype=torch.bool)
        outside[src[b]] = False
        outside[0] = True  # padding gets no attention
        assert probs[b][:, outside].sum() < 1e-12
    assert torch.allclose(probs.sum(-1), torch.ones(3, 5), atol=1e-5)


def test_cached_steps_equal_the_full_forward_and_the_searches_run():
    model = _model()
    src, tgt = _batch()
    full = torch.log_softmax(model(src, tgt).logits.float(), -1)
    state = model.start(src)
    steps = []
    for t in range(tgt.shape[1]):
        log_probs, state = model.step(tgt[:, t], state)
        steps.append(log_probs)
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)
    greedy = greedy_search(model, src, bos_id=2, eos_id=3, max_len=8)
    beam = beam_search(model, src, bos_id=2, eos_id=3, max_len=8, beam_size=3)
    assert len(greedy.tokens) == len(beam.tokens) == 3


def test_the_gate_learns_from_the_loss_and_survives_save_load(tmp_path):
    model = _model().train()
    src, tgt = _batch()
    labels = torch.cat([tgt[:, 1:], torch.full((3, 1), 3)], 1)
    model(src, tgt, labels).loss.backward()
    assert model.copy_gate.proj.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    loaded = Transformer.from_pretrained(tmp_path).eval()
    assert loaded.config.copy_attention
    assert torch.equal(loaded(src, tgt).logits, model.eval()(src, tgt).logits)


def test_smoothed_nll_is_torch_cross_entropy_on_normalised_log_probs():
    g = torch.Generator().manual_seed(4)
    log_probs = torch.log_softmax(torch.randn(3, 5, 9, generator=g, dtype=torch.float64), -1)
    labels = torch.randint(1, 9, (3, 5), generator=g)
    labels[0, 3:] = 0
    expected = torch.nn.functional.cross_entropy(log_probs.flatten(0, 1), labels.flatten(), ignore_index=0,
                                                 label_smoothing=0.1)
    assert torch.allclose(smoothed_nll(log_probs, labels, 0, 0.1).double(), expected, atol=1e-6)


def test_copy_attention_needs_one_vocabulary():
    with pytest.raises(AttnlabError, match="copy_attention needs one vocabulary"):
        TransformerConfig(src_vocab_size=50, tgt_vocab_size=60, copy_attention=True)
