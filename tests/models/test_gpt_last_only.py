"""``GPT.forward(..., last_only=True)`` computes the last block at the last position only:
its logits (and their gradient with respect to the embeddings) equal the full forward's last
row, in fp64 to 1e-12, with and without left padding; weights and caches keep the full path."""

from __future__ import annotations

import pytest
import torch

from attnlab.models import GPT, GPTConfig


def model() -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=37, context_length=16, num_layers=3, num_heads=2, d_model=24,
                       dropout=0.0, attention_dropout=0.0, eos_token_id=None)
    gpt = GPT(config).double().eval()
    with torch.no_grad():
        for p in gpt.parameters():
            if p.dim() > 1:
                p.mul_(6)  # attention far from uniform
    return gpt


def queries_of_last_block(gpt: GPT, call) -> tuple[object, list[int]]:
    seen = []
    handle = gpt.blocks[-1].self_attn.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[1]))
    try:
        return call(), seen
    finally:
        handle.remove()


@pytest.mark.parametrize("padded", [False, True])
def test_last_only_equals_the_full_forwards_last_row(padded):
    gpt = model()
    ids = torch.randint(0, 37, (2, 11), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 11, dtype=torch.long)
    if padded:
        mask[1, :4] = 0  # left padding
    position = (mask.cumsum(-1) - 1).clamp(min=0) if padded else None
    kwargs = dict(attention_mask=mask if padded else None, position_ids=position)
    full = gpt(ids, **kwargs).logits[:, -1:]
    last, seen = queries_of_last_block(gpt, lambda: gpt(ids, **kwargs, last_only=True).logits)
    assert seen == [1]  # the last block computed one query
    torch.testing.assert_close(last, full, rtol=0, atol=1e-12)


def test_last_only_gradient_equals_the_full_forwards():
    gpt = model()
    ids = torch.randint(0, 37, (2, 9), generator=torch.Generator().manual_seed(2))
    emb = gpt.token_embedding(ids).detach()

    def grad(last_only: bool) -> torch.Tensor:
        e = emb.clone().requires_grad_(True)
        handle = gpt.token_embedding.register_forward_hook(lambda _m, _a, _o: e)
        try:
            logits = gpt(ids, last_only=last_only).logits[:, -1]
        finally:
            handle.remove()
        return torch.autograd.grad(torch.log_softmax(logits, -1)[:, 3].sum(), e)[0]

    torch.testing.assert_close(grad(True), grad(False), rtol=0, atol=1e-12)


def test_weights_and_caches_keep_every_query():
    gpt = model()
    ids = torch.randint(0, 37, (1, 7), generator=torch.Generator().manual_seed(3))
    out, seen = queries_of_last_block(gpt, lambda: gpt(ids, need_weights=True, last_only=True))
    assert seen == [7] and out.attentions["layers.2.causal"].shape == (1, 2, 7, 7)
    caches = gpt.make_caches(16)
    _, seen = queries_of_last_block(gpt, lambda: gpt(ids, caches=caches, last_only=True))
    assert seen == [7] and caches[-1].length == 7
