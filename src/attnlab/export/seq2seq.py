"""ONNX graphs of the RNN translator (:class:`attnlab.models.Seq2Seq`): :meth:`Seq2Seq.start`
and one :meth:`Seq2Seq.step` (each attention mechanism's own step), the recurrent and
attention state as explicit tensors:

    encoder(src_ids (B, S))  -> memory (B, S, H), h (L, B, H) [, c for an LSTM], feed (B, F),
                                previous, cumulative (B, S) [, projected_keys, fertility]
    decoder(input_ids (N, 1), step (), the state tensors, src_mask (N, S))
                             -> log_probs (N, 1, V), next.h [, next.c], next.feed,
                                next.previous, next.cumulative

``previous`` = a_{t-1} (location-sensitive, monotonic), ``cumulative`` = sum_{k<t} a_k / Phi
(location-sensitive; coverage's C_{t-1}, fertility Phi), ``step`` = t (local-m), per
sentence ``projected_keys`` (W_k h) and ``fertility`` (Phi); a mechanism that reads none
leaves it unused. The encoder takes the TorchScript exporter (``fallback_reason`` says why);
hard attention exports its eval-mode argmax form.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.export.graphs import Graph, config_for
from attnlab.models.seq2seq import Seq2SeqState
from attnlab.models.seq2seq_attention import AttentionState

UPDATED = ("feed", "previous", "cumulative")  # besides the RNN state: what a step changes
PER_SENTENCE = ("projected_keys", "fertility")  # the attention's tensors fixed for a sentence
BATCH_AXIS = {0: "batch"}
RNN = {"gru": ["h"], "lstm": ["h", "c"]}  # the RNN state's tensors, each (L, N, H)


def state_tensors(state: Seq2SeqState, names: list[str]) -> tuple[Tensor, ...]:
    """``state`` as the tensors called ``names`` (see the module docstring): the RNN state,
    ``feed``, and the attention state's fields of those names."""
    rnn = state.rnn if isinstance(state.rnn, tuple) else (state.rnn,)
    own = {**dict(zip(("h", "c"), rnn)), "feed": state.feed}
    return tuple(own[n] if n in own else getattr(state.attention, n) for n in names)


def decoder_step(m: nn.Module, state_names: list[str], input_ids: Tensor, step: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
    """One :meth:`Seq2Seq.step` on explicit tensors: ``input_ids (N, 1)``, ``step`` (a 0-d
    int64: tokens fed so far), then the state tensors in ``state_names`` order."""
    s = dict(zip(state_names, inputs))
    rnn = tuple(s[n] for n in RNN[m.config.cell])
    attention = AttentionState(s["memory"], s.get("projected_keys"), s["src_mask"].bool(), s["previous"],
                               s["cumulative"], s.get("fertility"), step)
    log_probs, state = m.step(input_ids[:, 0], Seq2SeqState(rnn if len(rnn) == 2 else rnn[0], attention, s["feed"]))
    return log_probs[:, None], *state_tensors(state, [*RNN[m.config.cell], *UPDATED])


def seq2seq_graphs(model: nn.Module) -> tuple[list[Graph], dict]:
    """The encoder and decoder graphs of a Seq2Seq and what ``export.json`` says of them."""
    c = model.config
    model.eval()  # the traced modules are put in eval mode too: exporting one applies its mode to the model
    src = torch.randint(3, c.src_vocab_size, (2, 6))
    src[1, -2:] = c.pad_id
    with torch.no_grad():
        state0 = model.start(src)
    extra = [n for n in PER_SENTENCE if getattr(state0.attention, n) is not None]
    rnn = RNN[c.cell]
    names = ["memory", *rnn, *UPDATED, *extra]
    source = {0: "batch", 1: "src_length"}
    axes = {"memory": source, **{n: {1: "batch"} for n in rnn}, "feed": BATCH_AXIS, "previous": source,
            "cumulative": source, "src_mask": source, **{n: source for n in extra}}
    why = ("torch.export fixes nn.GRU/nn.LSTM's source length and cannot pack sequences; ONNX's "
           "GRU/LSTM operator takes each sentence's length as sequence_lens, its length dynamic")
    encoder = Graph("encoder", model, lambda m, src_ids: state_tensors(m.start(src_ids), names), {"src_ids": (src, source)},
                    {n: axes[n] for n in names}, torchscript=why)
    state_names = [*rnn, *UPDATED, "memory", "src_mask", *extra]
    # distinct tensors: torch.export traces inputs that share storage (previous and cumulative
    # start as one zeros tensor) as one input
    example = {n: t.clone() for n, t in zip(names, state_tensors(state0, names))}
    example.update(feed=torch.randn(2, model.feed_dim), src_mask=(src != c.pad_id).long())
    decoder = Graph("decoder", model, lambda m, *inputs: decoder_step(m, state_names, *inputs), {
        "input_ids": (torch.randint(3, c.tgt_vocab_size, (2, 1)), BATCH_AXIS), "step": (torch.tensor(3), {}),
        **{n: (example[n], axes[n]) for n in state_names}},
        {"log_probs": BATCH_AXIS, **{f"next.{n}": axes[n] for n in [*rnn, *UPDATED]}})
    info = {"config": config_for("seq2seq", c, feed_dim=model.feed_dim),
            "generation": {"state": state_names, "updated": [*rnn, *UPDATED]}}
    return [encoder, decoder], info
