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
leaves it unused. The encoder packs the sources by length; the TorchScript exporter turns
the packed GRU/LSTM into ONNX's operators with ``sequence_lens``. Sampled hard attention is
not a function of the inputs and is refused (eval mode's argmax form exports).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.export.graphs import config_for
from attnlab.export.spec import Exported, traced
from attnlab.models.seq2seq import Seq2SeqState
from attnlab.models.seq2seq_attention import AttentionState

UPDATED = ("feed", "previous", "cumulative")  # besides the RNN state: what a step changes
PER_SENTENCE = ("projected_keys", "fertility")  # the attention's tensors fixed for a sentence
BATCH_AXIS = {0: "batch"}


def rnn_names(model: nn.Module) -> list[str]:
    """The RNN state's tensors: ``h`` (GRU), ``h`` and ``c`` (LSTM), each ``(L, N, H)``."""
    return ["h", "c"] if model.config.cell == "lstm" else ["h"]


def state_tensors(state: Seq2SeqState, names: list[str]) -> tuple[Tensor, ...]:
    """``state`` as the tensors called ``names`` (see the module docstring)."""
    a = state.attention
    rnn = state.rnn if isinstance(state.rnn, tuple) else (state.rnn,)
    by_name = {**dict(zip(("h", "c"), rnn)), "feed": state.feed, "previous": a.previous,
               "cumulative": a.cumulative, "memory": a.memory, "projected_keys": a.projected_keys,
               "fertility": a.fertility}
    return tuple(by_name[n] for n in names)


def decoder_step(m: nn.Module, state_names: list[str], input_ids: Tensor, step: Tensor, *inputs: Tensor) -> tuple[Tensor, ...]:
    """One :meth:`Seq2Seq.step` on explicit tensors: ``input_ids (N, 1)``, ``step`` (a 0-d
    int64: tokens fed so far), then the state tensors in ``state_names`` order."""
    s = dict(zip(state_names, inputs))
    rnn = tuple(s[n] for n in rnn_names(m))
    attention = AttentionState(s["memory"], s.get("projected_keys"), s["src_mask"].bool(), s["previous"],
                               s["cumulative"], s.get("fertility"), step)
    log_probs, state = m.step(input_ids[:, 0], Seq2SeqState(rnn if len(rnn) == 2 else rnn[0], attention, s["feed"]))
    return log_probs[:, None], *state_tensors(state, [*rnn_names(m), *UPDATED])  # (N, 1, V), ...


def seq2seq_graphs(model: nn.Module) -> Exported:
    """The encoder and decoder graphs of a Seq2Seq and what ``export.json`` says of them."""
    from attnlab.attention.hard import HardAttention

    c = model.config
    if isinstance(model.attention.mechanism, HardAttention) and model.attention.mechanism.training:
        raise AttnlabError(
            "seq2seq with sampled hard attention cannot be exported to ONNX: each step draws a random sample "
            "(REINFORCE), and an ONNX graph must be a function of its inputs; put the model in eval mode "
            "(argmax attention, what attnlab translate uses) to export it"
        )
    model.eval()  # the traced modules are put in eval mode too: exporting one applies its mode to the model
    src = torch.randint(3, c.src_vocab_size, (2, 6))
    src[1, -2:] = c.pad_id
    with torch.no_grad():
        state0 = model.start(src)
    extra = [n for n in PER_SENTENCE if getattr(state0.attention, n) is not None]
    rnn = rnn_names(model)
    names = ["memory", *rnn, *UPDATED, *extra]
    source = {0: "batch", 1: "src_length"}
    axes = {"memory": source, **{n: {1: "batch"} for n in rnn}, "feed": BATCH_AXIS, "previous": source,
            "cumulative": source, "src_mask": source, **{n: source for n in extra}}
    encoder = traced("encoder", model, lambda m, src_ids: state_tensors(m.start(src_ids), names), {"src_ids": (src, source)},
                     {n: axes[n] for n in names}, exporter="torchscript", reason=(
                         "torch.export traces nn.GRU and nn.LSTM with the example's source length fixed and cannot pack "
                         "sequences; the TorchScript exporter writes ONNX's GRU/LSTM operator with each sentence's length "
                         "as sequence_lens, whose length stays dynamic"))
    state_names = [*rnn, *UPDATED, "memory", "src_mask", *extra]
    # distinct tensors: torch.export traces inputs that share storage (previous and cumulative
    # start as one zeros tensor) as one input
    example = {n: t.clone() for n, t in zip(names, state_tensors(state0, names))}
    example.update(feed=torch.randn(2, model.feed_dim), src_mask=(src != c.pad_id).long())
    decoder = traced("decoder", model, lambda m, *inputs: decoder_step(m, state_names, *inputs), {
        "input_ids": (torch.randint(3, c.tgt_vocab_size, (2, 1)), BATCH_AXIS), "step": (torch.tensor(3), {}),
        **{n: (example[n], axes[n]) for n in state_names}},
        {"log_probs": BATCH_AXIS, **{f"next.{n}": axes[n] for n in [*rnn, *UPDATED]}})
    rnn_words = "h and c (the LSTM's hidden and cell state)" if len(rnn) == 2 else "h"
    info = {
        "config": config_for("seq2seq", c, feed_dim=model.feed_dim),
        "generation": {
            "graphs": ["encoder", "decoder"],
            "state": state_names,
            "updated": [*rnn, *UPDATED],
            "steps": [
                f"encoder(src_ids) -> memory, {rnn_words} (the decoder's s_0), feed, previous, cumulative (the "
                "first step's state)" + (f" and {', '.join(extra)} (fixed for the sentence)" if extra else ""),
                "decoder(input_ids (N, 1) = bos_id first, step = tokens fed so far (0-d int64), src_mask = "
                "(src_ids != pad_id), the other state tensors by name) -> log_probs and next.X: feed each "
                "back as X (memory, src_mask" + "".join(f", {n}" for n in extra) + " stay as they are)",
                f"beam search: reorder every state row with the chosen parents ({', '.join(rnn)}: (layers, N, H), "
                "axis 1; the others axis 0)",
            ],
        },
    }
    return Exported([encoder, decoder], info)
