"""Transformer translator: nn.Transformer parity, causality, padding, batching, cache, save/load.

Tolerances: fp32 atol 1e-5 (the same operations in a different order).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlab.config import preset
from attnlab.errors import AttnlabError
from attnlab.models import Transformer, TransformerConfig
from attnlab.models.transformer import TRANSFORMER_PRESETS, EncoderDecoder

ATOL = 1e-5


def tiny(**overrides) -> Transformer:
    torch.manual_seed(0)
    config = preset(TRANSFORMER_PRESETS, "tiny", **{"src_vocab_size": 23, "tgt_vocab_size": 19, **overrides})
    return Transformer(config).eval()


def random_ids(batch: int, length: int, vocab: int, low: int = 4) -> torch.Tensor:
    return torch.randint(low, vocab, (batch, length))


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.parametrize("norm_first", [False, True])
def test_against_torch_nn_transformer(norm_first):
    torch.manual_seed(1)
    d, heads, ff = 32, 4, 48
    ref = nn.Transformer(
        d, heads, 2, 2, ff, dropout=0.0, batch_first=True, norm_first=norm_first,
    ).eval()
    config = TransformerConfig(
        d_model=d, num_heads=heads, num_encoder_layers=2, num_decoder_layers=2, d_ff=ff,
        dropout=0.0, norm_first=norm_first, final_norm=True,
    )
    stack = EncoderDecoder(config).eval()
    src, tgt = torch.randn(3, 7, d), torch.randn(3, 5, d)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 4:] = True
    mask = ~pad[:, None, None, :]

    def ours():
        memory, _ = stack.encode(src, mask)
        return stack.decode(tgt, memory, mask)[0]

    expected = ref(
        src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(5), tgt_is_causal=True,
        src_key_padding_mask=pad, memory_key_padding_mask=pad,
    )
    assert (ours() - expected).abs().max() > 1e-2  # before loading: different weights
    stack.load_torch(ref)
    torch.testing.assert_close(ours(), expected, atol=ATOL, rtol=0)


def test_causality_future_targets_do_not_change_earlier_logits():
    model = tiny()
    src, tgt = random_ids(2, 6, 23), random_ids(2, 8, 19)
    changed = tgt.clone()
    changed[:, 5:] = random_ids(2, 3, 19)
    a, b = model(src, tgt).logits, model(src, changed).logits
    torch.testing.assert_close(a[:, :5], b[:, :5], atol=ATOL, rtol=0)
    assert (a[:, 5:] - b[:, 5:]).abs().max() > 1e-4


def test_source_padding_invariance():
    model = tiny()
    src, tgt = random_ids(1, 5, 23), random_ids(1, 6, 19)
    padded = torch.cat([src, torch.zeros(1, 4, dtype=torch.long)], dim=1)  # pad_id = 0
    torch.testing.assert_close(model(src, tgt).logits, model(padded, tgt).logits, atol=ATOL, rtol=0)


def test_batch_equivalence():
    model = tiny()
    srcs = [random_ids(1, n, 23) for n in (3, 7, 5)]
    tgt = random_ids(3, 6, 19)
    batch = torch.zeros(3, 7, dtype=torch.long)
    for i, s in enumerate(srcs):
        batch[i, : s.shape[1]] = s
    together = model(batch, tgt).logits
    for i, s in enumerate(srcs):
        torch.testing.assert_close(model(s, tgt[i : i + 1]).logits[0], together[i], atol=ATOL, rtol=0)


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_steps_equal_full_forward(norm_first):
    model = tiny(norm_first=norm_first, num_decoder_layers=2)
    src = random_ids(2, 6, 23)
    src[1, 4:] = 0
    tgt = random_ids(2, 7, 19)
    full = torch.log_softmax(model(src, tgt).logits, dim=-1)
    state = model.start(src)
    steps = []
    for t in range(tgt.shape[1]):
        log_probs, state = model.step(tgt[:, t], state)
        steps.append(log_probs)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=ATOL, rtol=0)


def test_attentions_shapes_and_rows_sum_to_one_over_real_source():
    model = tiny()
    src = random_ids(2, 6, 23)
    src[0, 4:] = 0
    tgt = random_ids(2, 5, 19)
    out = model(src, tgt, need_weights=True)
    assert list(out.attentions) == ["encoder.0.self", "decoder.0.self", "decoder.0.cross"]
    assert [e.kind for e in out.attentions.entries()] == ["self", "causal", "cross"]
    assert out.attentions.entry("decoder.0.cross").axes == ("target", "source")
    cross = out.attentions["decoder.0.cross"]
    assert model(src, tgt).attentions is None
    assert cross.shape == (2, 2, 5, 6) and out.attentions["encoder.0.self"].shape == (2, 2, 6, 6)
    assert out.attentions["decoder.0.self"].shape == (2, 2, 5, 5)
    torch.testing.assert_close(cross.sum(-1), torch.ones(2, 2, 5), atol=ATOL, rtol=0)
    assert cross[0, :, :, 4:].abs().max() == 0  # padding gets no attention
    torch.testing.assert_close(out.logits, model(src, tgt).logits, atol=ATOL, rtol=0)  # math == fused path


def test_loss_is_label_smoothed_cross_entropy_over_non_pad_labels():
    model = tiny(label_smoothing=0.1)
    src, tgt, labels = random_ids(2, 5, 23), random_ids(2, 6, 19), random_ids(2, 6, 19)
    labels[1, 3:] = 0
    out = model(src, tgt, labels)
    logp = torch.log_softmax(out.logits.double(), dim=-1)
    keep = labels != 0
    nll = -logp.gather(-1, labels[..., None])[..., 0]
    smooth = -logp.mean(-1)
    expected = (0.9 * nll + 0.1 * smooth)[keep].mean()
    torch.testing.assert_close(out.loss.double(), expected, atol=ATOL, rtol=0)


def test_shared_embeddings_are_tied_and_survive_save_load(tmp_path):
    model = tiny(share_embeddings=True, src_vocab_size=19)
    assert model.src_embed.weight is model.tgt_embed.weight is model.output_proj.weight
    model.save_pretrained(tmp_path)
    loaded = Transformer.from_pretrained(tmp_path)
    assert loaded.src_embed.weight is loaded.output_proj.weight
    src, tgt = random_ids(2, 5, 19), random_ids(2, 4, 19)
    torch.testing.assert_close(loaded(src, tgt).logits, model(src, tgt).logits, atol=0, rtol=0)


def test_bad_input_gives_clear_errors():
    model = tiny()
    with pytest.raises(AttnlabError, match="max_len=64"):
        model(random_ids(1, 65, 23), random_ids(1, 3, 19))
    with pytest.raises(AttnlabError, match=r"src_ids holds ids in \[1, 99\]"):
        model(torch.tensor([[1, 99]]), random_ids(1, 3, 19))
    with pytest.raises(AttnlabError, match="divisible"):
        TransformerConfig(d_model=30, num_heads=4)


def test_guided_alignment_supervises_one_cross_attention_head():
    from attnlab.attention import guided_alignment_loss

    src, tgt, labels = random_ids(2, 5, 23), random_ids(2, 6, 19), random_ids(2, 6, 19)
    src[1, 3:] = 0
    align = torch.zeros(2, 6, 5)
    align[0, :, 1] = 1.0
    align[1, :4, 2] = 1.0
    base = tiny()(src, tgt, labels).loss
    assert torch.equal(tiny(alignment_weight=0.0)(src, tgt, labels, align=align).loss, base)
    model = tiny(num_decoder_layers=3, alignment_weight=0.7, alignment_head=1)
    assert model.config.supervised_layer == 1  # the penultimate layer (Garg et al. 2019)
    out = model(src, tgt, labels, need_weights=True, align=align)
    head = out.attentions["decoder.1.cross"][:, 1]  # (B, T, S)
    torch.testing.assert_close(out.alignment_loss, guided_alignment_loss(head, align))
    plain = model(src, tgt, labels)
    torch.testing.assert_close(out.loss, plain.loss + 0.7 * out.alignment_loss)
    # the weights of one layer are computed for the loss without changing the logits
    torch.testing.assert_close(model(src, tgt, labels, align=align).logits, plain.logits, atol=ATOL, rtol=0)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert tiny(alignment_weight=1.0).config.supervised_layer == 0  # one layer: that one
    assert tiny(num_decoder_layers=3, alignment_layer=-1).config.supervised_layer == 2
    with pytest.raises(AttnlabError, match="alignment_layer"):
        tiny(alignment_layer=1)
    with pytest.raises(AttnlabError, match="alignment_head"):
        tiny(alignment_head=2)


def test_raw_torch_errors_become_clear_errors():
    model = tiny()
    src, tgt = random_ids(2, 5, 23), random_ids(2, 4, 19)
    with pytest.raises(AttnlabError, match=r"labels holds values in \[19, 19\]"):
        model(src, tgt, torch.full((2, 4), 19))
    with pytest.raises(AttnlabError, match=r"labels holds values in \[-100, -100\]"):
        model(src, tgt, torch.full((2, 4), -100))  # pad_id marks ignored labels here, not -100
    with pytest.raises(AttnlabError, match=r"tgt_ids must be an integer tensor of shape \(2, 4\)"):
        model(src, tgt[:1])  # batch sizes differ
    with pytest.raises(AttnlabError, match="empty"):
        model(src[:0], tgt[:0])


def test_checkpoints_written_before_the_output_proj_rename_load(tmp_path):
    """Older checkpoints name the output projection ``generator``; they load by the name map."""
    from attnlab.io import read_safetensors, write_safetensors

    model = tiny(tie_output=False)
    model.save_pretrained(tmp_path)
    tensors = read_safetensors(tmp_path / "model.safetensors")
    old = {k.replace("output_proj.", "generator."): v for k, v in tensors.items()}
    assert "generator.weight" in old and "output_proj.weight" not in old
    write_safetensors(tmp_path / "model.safetensors", old, metadata={"format": "pt"})
    src, tgt = random_ids(2, 5, 23), random_ids(2, 4, 19)
    torch.testing.assert_close(Transformer.from_pretrained(tmp_path)(src, tgt).logits, model(src, tgt).logits,
                               atol=0, rtol=0)
