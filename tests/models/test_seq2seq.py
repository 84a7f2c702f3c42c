"""The RNN translator: every attention variant trains and decodes; step-by-step decoding
equals teacher forcing; beam search of width 1 equals greedy; checkpoints round-trip; the
encoder equals PyTorch's packed bidirectional RNN; clear errors."""

import pytest
import torch
from torch import nn

from attnlab.attention import AdditiveAttention
from attnlab.config import preset
from attnlab.errors import AttnlabError
from attnlab.evaluation.decoding import beam_search, greedy_search
from attnlab.models.seq2seq import SEQ2SEQ_PRESETS, Seq2Seq
from attnlab.models.seq2seq_attention import ATTENTION_NAMES

V = 16


def make(attention="bahdanau", **overrides):
    config = preset(SEQ2SEQ_PRESETS, "tiny", src_vocab_size=V, tgt_vocab_size=V, attention=attention, **overrides)
    return Seq2Seq(config)


def batch(b=4, s=7, t=6):
    src = torch.randint(3, V, (b, s))
    src[1, 4:] = 0  # padding
    tgt_in = torch.randint(3, V, (b, t))
    tgt_in[:, 0] = 1
    labels = torch.randint(3, V, (b, t))
    labels[2, 4:] = 0
    return src, tgt_in, labels


@pytest.mark.parametrize("attention", ATTENTION_NAMES)
def test_every_variant_trains_and_decodes(attention):
    torch.manual_seed(0)
    model = make(attention)
    src, tgt_in, labels = batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(12):
        out = model(src, tgt_in, labels, need_weights=True)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        ce = torch.nn.functional.cross_entropy(out.logits.detach().transpose(1, 2), labels, ignore_index=0)
        first = float(ce) if first is None else first
    assert float(ce) < first
    if attention != "none":
        cross = out.attentions["decoder.0.cross"]  # (B, 1, T, S)
        assert cross.shape == (4, 1, 6, 7) and (cross[1, :, :, 4:] == 0).all()
    else:
        assert len(out.attentions) == 0
    model.eval()
    hyps = beam_search(model, src, bos_id=1, eos_id=2, max_len=8, beam_size=3)
    assert len(hyps.tokens) == 4 and all(len(h) <= 8 for h in hyps.tokens)


@pytest.mark.parametrize("attention", ATTENTION_NAMES)
@pytest.mark.parametrize("style", ["luong", "bahdanau", "luong-without-input-feeding"])
def test_step_by_step_equals_teacher_forcing(attention, style):
    feeding = style != "luong-without-input-feeding"
    model = make(attention, attention_style=style.split("-")[0], input_feeding=feeding).eval()
    src, tgt_in, _ = batch()
    with torch.no_grad():
        full = torch.log_softmax(model(src, tgt_in).logits, -1)
        state = model.start(src)
        steps = []
        for t in range(tgt_in.shape[1]):
            log_probs, state = model.step(tgt_in[:, t], state)
            steps.append(log_probs)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_beam_of_one_equals_greedy_and_reorder(cell):
    model = make("location", cell=cell).eval()
    src, _, _ = batch()
    greedy = greedy_search(model, src, bos_id=1, eos_id=2, max_len=8)
    beam = beam_search(model, src, bos_id=1, eos_id=2, max_len=8, beam_size=1, alpha=0.0)
    assert greedy.tokens == beam.tokens
    state = model.start(src)
    index = torch.tensor([3, 0, 0])
    picked = model.reorder(state, index)
    torch.testing.assert_close(picked.attention.memory, state.attention.memory[index])


def test_encoder_equals_torch_packed_bidirectional_gru():
    model = make()
    src, _, _ = batch()
    memory, mask, _ = model.encode(src)
    reference = nn.GRU(32, 32, batch_first=True, bidirectional=True)
    reference.load_state_dict(model.encoder.state_dict())
    for row in range(4):  # each sentence alone, unpadded
        length = int(mask[row].sum())
        want, _ = reference(model.src_embed(src[row : row + 1, :length]))
        torch.testing.assert_close(memory[row : row + 1, :length], want, atol=1e-5, rtol=1e-5)
    assert (memory[1, 4:] == 0).all()


def test_attention_module_is_passed_in():
    config = preset(SEQ2SEQ_PRESETS, "tiny", src_vocab_size=V, tgt_vocab_size=V)
    mechanism = AdditiveAttention(64, 64, 8, normalize=True)
    model = Seq2Seq(config, attention=mechanism)
    assert model.attention.mechanism is mechanism
    src, tgt_in, labels = batch()
    assert torch.isfinite(model(src, tgt_in, labels).loss)


def test_save_and_load_round_trip(tmp_path):
    model = make("coverage", cell="lstm").eval()
    model.save_pretrained(tmp_path)
    loaded = Seq2Seq.from_pretrained(tmp_path)
    src, tgt_in, _ = batch()
    torch.testing.assert_close(loaded(src, tgt_in).logits, model(src, tgt_in).logits)


def test_auxiliary_losses_of_coverage_and_hard_attention():
    src, tgt_in, labels = batch()
    for attention in ("coverage", "hard"):
        out = make(attention, coverage_weight=1.0)(src, tgt_in, labels)
        assert out.attention_loss is not None and torch.isfinite(out.attention_loss)
    assert make("bahdanau")(src, tgt_in, labels).attention_loss is None


def test_clear_errors():
    with pytest.raises(AttnlabError, match="attention"):
        make("global")
    with pytest.raises(AttnlabError, match="cell"):
        make(cell="rnn")
    model = make()
    src, tgt_in, _ = batch()
    with pytest.raises(AttnlabError, match="src_ids"):
        model(src + V, tgt_in)
    with pytest.raises(AttnlabError, match="tgt_ids"):
        model(src, tgt_in.float())


def random_align(src, labels):
    """Gold-like targets (B, T, S): each non-pad label row puts its mass on one real source token."""
    align = torch.zeros(*labels.shape, src.shape[1])
    real = (src != 0).sum(1)
    for b in range(len(src)):
        for t in range(labels.shape[1]):
            if labels[b, t] != 0 and t % 3:  # some rows unlinked
                align[b, t, (b + t) % int(real[b])] = 1.0
    return align


def test_guided_alignment_adds_lambda_times_the_alignment_cross_entropy():
    from attnlab.attention import guided_alignment_loss

    src, tgt_in, labels = batch()
    align = random_align(src, labels)
    torch.manual_seed(0)
    plain = make()
    torch.manual_seed(0)
    off = make(alignment_weight=0.0)
    torch.manual_seed(0)
    guided = make(alignment_weight=0.5)
    base = plain(src, tgt_in, labels).loss
    assert torch.equal(off(src, tgt_in, labels, align=align).loss, base)  # lambda = 0: plain CE
    out = guided(src, tgt_in, labels, need_weights=True, align=align)
    torch.testing.assert_close(out.alignment_loss, guided_alignment_loss(out.attentions["decoder.0.cross"][:, 0], align))
    torch.testing.assert_close(out.loss, base + 0.5 * out.alignment_loss)
    assert torch.equal(guided(src, tgt_in, labels).loss, base)  # no align in the batch: plain CE
    with pytest.raises(AttnlabError, match="alignment_weight"):
        make("none", alignment_weight=1.0)


def test_raw_torch_errors_become_clear_errors():
    model = make()
    src, tgt_in, labels = batch()
    with pytest.raises(AttnlabError, match=rf"labels holds values in \[{V}, {V}\]"):
        model(src, tgt_in, torch.full_like(labels, V))
    with pytest.raises(AttnlabError, match="same batch size"):
        model(src[:2], tgt_in)
    with pytest.raises(AttnlabError, match="empty"):
        model(src[:0], tgt_in[:0])


def test_checkpoints_written_before_the_output_proj_rename_load(tmp_path):
    """Older checkpoints name the output layer ``generator``; they load by the name map."""
    from attnlab.io import read_safetensors, write_safetensors

    model = make().eval()
    model.save_pretrained(tmp_path)
    tensors = read_safetensors(tmp_path / "model.safetensors")
    old = {k.replace("output_proj.", "generator."): v for k, v in tensors.items()}
    assert "generator.weight" in old
    write_safetensors(tmp_path / "model.safetensors", old, metadata={"format": "pt"})
    src, tgt_in, _ = batch()
    torch.testing.assert_close(Seq2Seq.from_pretrained(tmp_path)(src, tgt_in).logits, model(src, tgt_in).logits)


@pytest.mark.parametrize("attention", ["location", "coverage", "bahdanau"])
def test_checkpoints_written_before_location_and_coverage_shared_the_additive_score_load(tmp_path, attention):
    """Location and coverage attention held ``query_layer``/``memory_layer``/``v`` themselves
    before they were built on AdditiveAttention; such checkpoints load to the same model.
    Bahdanau's own ``v`` is never renamed."""
    from attnlab.io import read_safetensors, write_safetensors

    model = make(attention).eval()
    model.save_pretrained(tmp_path)
    tensors = read_safetensors(tmp_path / "model.safetensors")
    if attention != "bahdanau":
        renames = {"additive.query_proj.": "query_layer.", "additive.key_proj.": "memory_layer.", "additive.v": "v"}
        for new_name, old_name in renames.items():
            tensors = {k.replace("attention.mechanism." + new_name, "attention.mechanism." + old_name): v
                       for k, v in tensors.items()}
        assert "attention.mechanism.v" in tensors and not any("additive" in k for k in tensors)
    write_safetensors(tmp_path / "model.safetensors", tensors, metadata={"format": "pt"})
    src, tgt_in, _ = batch()
    torch.testing.assert_close(Seq2Seq.from_pretrained(tmp_path)(src, tgt_in).logits, model(src, tgt_in).logits,
                               rtol=0, atol=0)


def test_weights_of_the_wrong_shape_are_named(tmp_path):
    from attnlab.io import read_safetensors, write_safetensors

    make().save_pretrained(tmp_path)
    tensors = read_safetensors(tmp_path / "model.safetensors")
    tensors["output_proj.bias"] = tensors["output_proj.bias"][:-1]
    tensors["extra.weight"] = torch.zeros(1)
    del tensors["bridge.weight"]
    write_safetensors(tmp_path / "model.safetensors", tensors, metadata={"format": "pt"})
    with pytest.raises(AttnlabError, match=r"missing \['bridge.weight'\]; unexpected \['extra.weight'\]; of the wrong "
                                           r"shape \['output_proj.bias \(\d+,\) \(expected \(\d+,\)\)'\]"):
        Seq2Seq.from_pretrained(tmp_path)
