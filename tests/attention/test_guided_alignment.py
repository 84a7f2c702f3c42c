"""Guided alignment (Chen et al. 2016; Garg et al. 2019): gold links -> per-token targets,
and the loss against an fp64 reference of its formula."""

import pytest
import torch

from attnlab.attention import alignment_targets, guided_alignment_loss
from attnlab.errors import AttnlabError


def test_word_level_targets_are_normalised_rows_with_zero_rows_for_unlinked_tokens():
    # source "a b c", target "x y z w": x <- a; y <- b, c; z unlinked; w <- c
    links = [{(0, 0), (1, 1), (2, 1), (2, 3)}]
    g = alignment_targets(links, [[0, 1, 2]], [[0, 1, 2, 3]], src_len=4, tgt_len=5)
    expected = torch.tensor([[1, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0.0]])
    assert g.dtype == torch.float32 and g.shape == (1, 5, 4)
    torch.testing.assert_close(g[0], expected)


def test_subword_tokens_share_their_words_links_spread_over_source_tokens():
    # source words: 0 -> tokens 0, 1; 1 -> token 2.  target words: 0 -> tokens 0, 1, 2; 1 -> token 3
    links = [{(0, 0), (1, 1)}, {(0, 0)}]
    g = alignment_targets(links, [[0, 0, 1], [0]], [[0, 0, 0, 1], [0]])
    assert g.shape == (2, 4, 3)
    for t in range(3):
        torch.testing.assert_close(g[0, t], torch.tensor([0.5, 0.5, 0.0]))
    torch.testing.assert_close(g[0, 3], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(g[1], torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]))


def test_links_outside_the_sentence_are_an_error():
    with pytest.raises(AttnlabError, match="link 3-0"):
        alignment_targets([{(3, 0)}], [[0, 1]], [[0]])
    with pytest.raises(AttnlabError, match="link 0-2"):
        alignment_targets([{(0, 2)}], [[0, 1]], [[0, 1]])


def reference_loss(weights, targets, eps=1e-6):
    g, a = targets.double(), weights.double()
    rows = (g.sum(-1) > 0).sum()
    return -(g * torch.log(a + eps)).sum() / rows


def test_loss_matches_fp64_reference():
    torch.manual_seed(0)
    weights = torch.softmax(torch.randn(3, 5, 7), dim=-1)
    targets = torch.rand(3, 5, 7) * (torch.rand(3, 5, 7) > 0.6)
    targets[1, 2] = 0.0  # an unlinked token: excluded from the mean
    targets = targets / targets.sum(-1, keepdim=True).clamp_min(1e-9)
    loss = guided_alignment_loss(weights, targets)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    torch.testing.assert_close(loss.double(), reference_loss(weights, targets), rtol=1e-5, atol=1e-6)
    # bf16 attention is scored in fp32
    bf16 = guided_alignment_loss(weights.bfloat16(), targets)
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16.double(), reference_loss(weights.bfloat16().float(), targets), rtol=1e-5, atol=1e-6)


def test_finite_gradient_where_attention_is_exactly_zero():
    scores = torch.randn(2, 3, 4, requires_grad=True)
    mask = torch.tensor([True, True, False, False])
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)  # exact zeros on 2, 3
    targets = torch.zeros(2, 3, 4)
    targets[:, :, 2] = 1.0  # gold says: the masked position
    targets[0, 1] = torch.tensor([0.5, 0.5, 0.0, 0.0])
    loss = guided_alignment_loss(weights, targets)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(scores.grad).all()


def test_no_linked_row_gives_zero_and_shapes_must_match():
    weights = torch.softmax(torch.randn(2, 3, 4), dim=-1)
    assert float(guided_alignment_loss(weights, torch.zeros(2, 3, 4))) == 0.0
    with pytest.raises(AttnlabError, match="differ"):
        guided_alignment_loss(weights, torch.zeros(2, 3, 5))
