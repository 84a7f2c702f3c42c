"""ONNX graphs of the RNN translator (:class:`attnlab.models.Seq2Seq`): an encoder and a
one-token decoder step whose recurrent and attention state are explicit tensors.

    encoder(src_ids (B, S))  -> memory (B, S, H), h (L, B, H) [, c (L, B, H) for an LSTM],
                                feed (B, F), previous (B, S), cumulative (B, S)  (the first
                                step's state) [, projected_keys (B, S, P)] [, fertility (B, S)]
    decoder(input_ids (N, 1), step (), h [, c], feed, previous, cumulative, memory,
            src_mask (N, S) [, projected_keys] [, fertility])
                             -> log_probs (N, 1, V), next.h [, next.c], next.feed,
                                next.previous, next.cumulative

Both graphs run the model's own code on these tensors: the encoder is
:meth:`Seq2Seq.start`, the decoder :meth:`Seq2Seq.step` with every attention mechanism's
own step (:class:`attnlab.models.seq2seq_attention.DecoderAttention`). The state carries
what any mechanism needs: ``previous`` = a_{t-1} (location-sensitive, monotonic: one-hot
at 0 before the first step), ``cumulative`` = sum_{k<t} a_k / Phi (location-sensitive;
coverage's C_{t-1}, with fertility Phi), ``step`` = t (local-m's window centre), and the
per-sentence ``projected_keys`` (W_k h) and ``fertility`` (Phi). Mechanisms that do not
read a tensor leave it unused (the graph drops the input; it still updates the output).

The encoder packs the padded sources by length, as attnlab does; the TorchScript exporter
turns the packed bidirectional GRU/LSTM into ONNX's GRU/LSTM operators with each sentence's
length as ``sequence_lens``, so h (and the LSTM's cell state c) come from each sentence's
own last token in both directions, at any source length and batch size.

Sampled hard attention cannot be exported: the sample is drawn from a random generator
inside the step, and an exported graph must be a function of its inputs. attnlab's hard
attention samples only in training mode; a loaded checkpoint is in eval mode, whose
argmax form exports.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.export.spec import Exported, Graph
from attnlab.models.seq2seq import Seq2SeqState
from attnlab.models.seq2seq_attention import AttentionState

UPDATED = ("feed", "previous", "cumulative")  # besides the RNN state: what a step changes
PER_SENTENCE = ("projected_keys", "fertility")  # the attention's tensors fixed for a sentence


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


class Seq2SeqEncoderGraph(nn.Module):
    """``src_ids (B, S)`` -> :meth:`Seq2Seq.start`'s state as the tensors ``names``."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, src_ids: Tensor) -> tuple[Tensor, ...]:
        return state_tensors(self.model.start(src_ids), self.names)


class Seq2SeqDecoderGraph(nn.Module):
    """One :meth:`Seq2Seq.step` on explicit tensors: ``input_ids (N, 1)``, ``step`` (a 0-d
    int64: tokens fed so far), then the state tensors in ``state_names`` order."""

    def __init__(self, model: nn.Module, state_names: list[str]):
        super().__init__()
        self.model, self.state_names = model, state_names

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        m, (input_ids, step), s = self.model, inputs[:2], dict(zip(self.state_names, inputs[2:]))
        rnn = tuple(s[n] for n in rnn_names(m))
        attention = AttentionState(
            s["memory"], s.get("projected_keys"), s["src_mask"].bool(), s["previous"], s["cumulative"],
            s.get("fertility"), step,
        )
        state = Seq2SeqState(rnn if len(rnn) == 2 else rnn[0], attention, s["feed"])
        log_probs, state = m.step(input_ids[:, 0], state)  # (N, V)
        return log_probs[:, None], *state_tensors(state, [*rnn_names(m), *UPDATED])


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
    model.eval()  # the wrappers below are put in eval mode too: exporting one applies its mode to the model
    b, s = 2, 6
    src = torch.randint(3, c.src_vocab_size, (b, s))
    src[1, -2:] = c.pad_id
    with torch.no_grad():
        state0 = model.start(src)
    extra = [n for n in PER_SENTENCE if getattr(state0.attention, n) is not None]
    rnn = rnn_names(model)
    enc_outputs = ["memory", *rnn, *UPDATED, *extra]
    bs = {0: "batch", 1: "src_length"}
    axes = {"src_ids": bs, "memory": bs, **{n: {1: "batch"} for n in rnn}, "feed": {0: "batch"},
            "previous": bs, "cumulative": bs, **{n: bs for n in extra}}
    encoder = Graph(
        "encoder", Seq2SeqEncoderGraph(model, enc_outputs).eval(), (src,), ["src_ids"], enc_outputs, axes,
        exporter="torchscript", reason=(
            "torch.export traces nn.GRU and nn.LSTM with the example's source length fixed and cannot pack "
            "sequences; the TorchScript exporter writes ONNX's GRU/LSTM operator with each sentence's length "
            "as sequence_lens, whose length stays dynamic"),
    )

    state_names = [*rnn, *UPDATED, "memory", "src_mask", *extra]
    # distinct tensors: torch.export traces inputs that share storage (previous and cumulative
    # start as one zeros tensor) as one input
    example = {n: t.clone() for n, t in zip(enc_outputs, state_tensors(state0, enc_outputs))}
    example.update(feed=torch.randn(b, model.feed_dim), src_mask=(src != c.pad_id).long())
    dec_outputs = ["log_probs", *(f"next.{n}" for n in [*rnn, *UPDATED])]
    dec_axes = {"input_ids": {0: "batch"}, **{n: axes[n] for n in enc_outputs if n != "memory"}, "memory": bs,
                "src_mask": bs, "log_probs": {0: "batch"},
                **{f"next.{n}": axes[n] for n in [*rnn, *UPDATED]}}
    decoder = Graph(
        "decoder", Seq2SeqDecoderGraph(model, state_names).eval(),
        (torch.randint(3, c.tgt_vocab_size, (b, 1)), torch.tensor(3), *(example[n] for n in state_names)),
        ["input_ids", "step", *state_names], dec_outputs, dec_axes,
    )
    rnn_words = "h and c (the LSTM's hidden and cell state)" if len(rnn) == 2 else "h"
    info = {
        "config": {"src_vocab_size": c.src_vocab_size, "tgt_vocab_size": c.tgt_vocab_size, "pad_id": c.pad_id,
                   "bos_id": c.bos_id, "eos_id": c.eos_id, "max_len": c.max_len, "cell": c.cell,
                   "attention": c.attention, "feed_dim": model.feed_dim},
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
