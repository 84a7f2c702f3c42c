"""The RNN translator's ONNX export for every attention mechanism and both cells: the
encoder's state, the log-probabilities of every decoder step (teacher forcing, fed back
step by step through the cached state tensors) and greedy and beam search equal attnlab's
PyTorch model (fp32, 1e-4 absolute), at batch sizes and source lengths the export never
saw, with padded rows of different lengths.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytestmark = pytest.mark.slow  # fourteen exports

from test_onnx import ATOL, _close, _export, _sources  # noqa: E402

from attnlab.evaluation.decoding import decode  # noqa: E402
from attnlab.export.seq2seq import state_tensors  # noqa: E402
from attnlab.models import Seq2Seq  # noqa: E402
from attnlab.models.seq2seq import SEQ2SEQ_PRESETS  # noqa: E402
from attnlab.models.seq2seq_attention import ATTENTION_NAMES  # noqa: E402

# (attention, cell, num_layers, attention_style): every mechanism with a GRU (two layers for one); an LSTM with
# two layers, with Bahdanau-style attention (the query is h of the (h, c) state), with local-m
CASES = [(name, "gru", 2 if name == "bahdanau" else 1, "luong") for name in ATTENTION_NAMES] + [
    ("location", "lstm", 2, "luong"), ("coverage", "lstm", 1, "bahdanau"), ("local-m", "lstm", 1, "luong"),
]
SRC_VOCAB, TGT_VOCAB, BOS, EOS = 37, 41, 2, 3


@pytest.fixture(scope="module", params=CASES, ids=["-".join(map(str, case)) for case in CASES])
def seq2seq(request, tmp_path_factory):
    attention, cell, layers, style = request.param
    torch.manual_seed(0)
    config = dataclasses.replace(
        SEQ2SEQ_PRESETS["tiny"], src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB, attention=attention, cell=cell,
        num_layers=layers, attention_style=style, window=2, bos_id=BOS, eos_id=EOS,
    )
    model = Seq2Seq(config)
    with torch.no_grad():  # peaked distributions: no near-ties for 1e-7 differences to flip
        model.output_proj.weight.mul_(4)
    return _export(model, tmp_path_factory, f"seq2seq_{attention}_{cell}_{layers}_{style}")


def _state_names(rt) -> list[str]:
    return [n for n in rt.manifest["generation"]["state"] if n != "src_mask"]


def test_manifest_names_the_state(seq2seq):
    model, _, rt = seq2seq
    generation = rt.manifest["generation"]
    rnn = ["h", "c"] if model.config.cell == "lstm" else ["h"]
    assert generation["updated"] == [*rnn, "feed", "previous", "cumulative"]
    assert generation["state"][: len(rnn)] == rnn and "src_mask" in generation["state"]
    inputs = {i["name"]: i["shape"] for i in rt.manifest["graphs"]["decoder"]["inputs"]}
    for name in rnn:
        assert inputs[name] == [model.config.num_layers, "batch", model.config.hidden_dim]
    assert ("c" in generation["state"]) == (model.config.cell == "lstm")


@pytest.mark.parametrize("batch, length", [(1, 2), (5, 13)])
def test_encoder_state_equals_pytorch_at_unseen_lengths(seq2seq, batch, length):
    model, _, rt = seq2seq
    src = _sources(batch, length, SRC_VOCAB)
    out = rt.sessions["encoder"].run(src_ids=src)
    with torch.no_grad():
        expected = state_tensors(model.start(src), list(out))
    for name, value in zip(out, expected):
        _close(out[name], value)


@pytest.mark.parametrize("batch, src_len, tgt_len", [(1, 3, 4), (5, 11, 7)])
def test_every_step_equals_pytorch(seq2seq, batch, src_len, tgt_len):
    """Teacher forcing: the log-probabilities of each step and every state tensor fed back."""
    model, _, rt = seq2seq
    src = _sources(batch, src_len, SRC_VOCAB)
    tgt = torch.randint(4, TGT_VOCAB, (batch, tgt_len))
    with torch.no_grad():
        expected = model(src, tgt).logits.log_softmax(-1)
        state = model.start(src)
    names = _state_names(rt)
    onnx_state = rt.start(src)
    for t in range(tgt_len):
        log_probs, onnx_state = rt.step(tgt[:, t], onnx_state)
        with torch.no_grad():
            _, state = model.step(tgt[:, t], state)
        _close(log_probs, expected[:, t])
        for name, value in zip(names, state_tensors(state, names)):
            _close(onnx_state.arrays[name], value)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_search_gives_the_same_tokens(seq2seq, beam_size):
    model, _, rt = seq2seq
    src = _sources(4, 9, SRC_VOCAB)
    src[2, 3:] = 0  # three lengths in one batch
    expected = decode(model, src, bos_id=BOS, eos_id=EOS, max_len=12, beam_size=beam_size)
    got = decode(rt, src, bos_id=BOS, eos_id=EOS, max_len=12, beam_size=beam_size)
    assert got.tokens == expected.tokens
    assert (got.scores - expected.scores).abs().max() < ATOL
