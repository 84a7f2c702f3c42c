"""ONNX graphs of the RNN translator (:class:`attnlab.models.Seq2Seq`): an encoder and a
one-token decoder step whose recurrent and attention state are explicit tensors.

    encoder(src_ids (B, S))  -> memory (B, S, H), h (layers, B, H), feed, previous,
                                cumulative (the first step's state) and the attention's
                                per-sentence tensors (projected keys, fertility)
    decoder(input_ids (N, 1), step, h, feed, previous, cumulative, memory, src_mask, ...)
                             -> log_probs (N, 1, V), next.h, next.feed, next.previous,
                                next.cumulative

The encoder is a bidirectional RNN over padded sources. attnlab runs it on packed
sequences; a graph cannot pack, so each direction runs as its own one-direction RNN
(the same weights): the forward one over the padded batch (padding comes last, so real
positions never see it) and the backward one over each sentence reversed within its own
length, which is what packing computes. The decoder step is written out here from the
model's weights (the model's own step reads tensor values to guard against empty rows,
which a traced graph cannot): Bahdanau, Luong (dot, general, concat), hard (its
inference argmax) and no attention. Location-sensitive, monotonic, coverage and local
attention carry more state and are refused with a line saying so.

Sampled hard attention cannot be exported: the sample is drawn from a random generator
inside the step, and an exported graph must be a function of its inputs. attnlab's hard
attention samples only in training mode; a loaded checkpoint is in eval mode, whose
argmax form exports.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.export.graphs import output_layer
from attnlab.export.spec import Exported, Graph


def _reversed_within_length(lengths: Tensor, width: int) -> Tensor:
    """``(B, S)`` index: position t of row b reads ``lengths[b] - 1 - t`` (t < length), else t."""
    t = torch.arange(width, device=lengths.device)[None, :]  # (1, S)
    return torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """``x (B, S, D)`` rows picked along time by ``index (B, S)``."""
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


class Seq2SeqEncoderGraph(nn.Module):
    """The bidirectional encoder, its bridge and the attention's per-sentence tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        rnn = model.encoder
        cls = type(rnn)
        self.directions = nn.ModuleList()
        for layer in range(rnn.num_layers):
            for suffix in ("", "_reverse"):
                one = cls(rnn.input_size if layer == 0 else 2 * rnn.hidden_size, rnn.hidden_size, batch_first=True)
                one.load_state_dict({
                    name + "_l0": getattr(rnn, f"{name}_l{layer}{suffix}")
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                })
                self.directions.append(one.to(rnn.weight_ih_l0))

    def forward(self, src_ids: Tensor):
        m = self.model
        real = src_ids != m.config.pad_id  # (B, S)
        lengths = real.sum(dim=1).clamp_min(1)  # (B,)
        last = (lengths - 1)[:, None]  # (B, 1)
        reverse = _reversed_within_length(lengths, src_ids.shape[1])  # (B, S)
        x = F.embedding(src_ids, m.src_embed.weight)  # (B, S, E)
        finals_h = []
        for layer in range(m.encoder.num_layers):
            fwd, bwd = self.directions[2 * layer], self.directions[2 * layer + 1]
            out_f, state_f = fwd(x)
            out_b_rev, _ = bwd(_gather_time(x, reverse))
            out_b = _gather_time(out_b_rev, reverse)  # back in source order
            # the forward final is its output at the last real token; the backward one ran to the end
            finals_h.append(_gather_time(out_f, last)[:, 0])
            finals_h.append(_gather_time(out_b_rev, last)[:, 0])
            x = torch.cat([out_f, out_b], dim=-1) * real[:, :, None].to(out_f.dtype)  # (B, S, H), 0 on pads
        memory = x
        s0 = m._bridge(torch.stack(finals_h))  # (2L, B, H/2) -> (L, B, H)
        state = m.attention.init_state(memory, real)
        outputs = [memory, s0, memory.new_zeros(memory.shape[0], m.feed_dim), state.previous, state.cumulative]
        outputs += [t for t in (state.projected_keys, state.fertility) if t is not None]
        return tuple(outputs)


class Seq2SeqDecoderGraph(nn.Module):
    """One step of :meth:`Seq2Seq._decode_step` on explicit tensors (Luong or Bahdanau
    style), with the attention's step written out for the mechanisms in :data:`EXPORTED`."""

    def __init__(self, model: nn.Module, state_names: list[str]):
        super().__init__()
        self.model, self.state_names = model, state_names

    def forward(self, *inputs: Tensor):
        """``input_ids (N, 1)``, ``step`` (a 0-d int64), then the state tensors in ``state_names`` order."""
        m = self.model
        input_ids = inputs[0]
        s = dict(zip(self.state_names, inputs[2:]))
        h, feed = s["h"], s["feed"]
        emb = F.embedding(input_ids[:, 0], m.tgt_embed.weight)  # (N, E)
        if m.luong_style:
            rnn_out, h = m.decoder(torch.cat([emb, feed], -1)[:, None], h)
            top = rnn_out[:, 0]  # (N, H)
            context, weights = self._attend(top, s)
        else:
            context, weights = self._attend(h[-1], s)  # s_{t-1}, top layer
            rnn_out, h = m.decoder(torch.cat([emb, context], -1)[:, None], h)
            top = rnn_out[:, 0]
        joined = torch.cat([top, context], -1)  # (N, 2H)
        if m.attention_layer is not None:
            out = torch.tanh(F.linear(joined, m.attention_layer.weight))
        else:
            out = context if m.luong_style else joined
        feed = out[:, : m.feed_dim] if m.luong_style else context
        proj = output_layer(m)
        log_probs = F.log_softmax(F.linear(out, proj.weight, proj.bias), dim=-1)[:, None]  # (N, 1, V)
        previous = s["previous"] if weights is None else weights
        cumulative = s["cumulative"] if weights is None else s["cumulative"] + weights
        return log_probs, h, feed, previous, cumulative

    def _attend(self, query: Tensor, s: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """Context ``(N, H)`` and weights ``(N, S)`` (None without attention) of one step."""
        from attnlab.attention.hard import HardAttention

        mechanism = self.model.attention.mechanism
        memory, allowed = s["memory"], s["src_mask"].bool()  # (N, S, H), (N, S)
        if mechanism_name(mechanism) == "none":  # the mean of the real encoder states
            weights = allowed.to(memory.dtype) / allowed.sum(dim=1, keepdim=True).clamp_min(1)
            return (weights[:, None] @ memory)[:, 0], None
        scores = memory_scores(mechanism, query, s["projected_keys"])  # (N, S)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        if isinstance(mechanism, HardAttention):  # inference: the argmax, one-hot
            positions = torch.arange(scores.shape[-1], device=scores.device)  # (S,)
            weights = (positions[None, :] == scores.argmax(dim=-1, keepdim=True)).to(memory.dtype)
        else:
            weights = scores.softmax(dim=-1)
        return (weights[:, None] @ memory)[:, 0], weights


def mechanism_name(mechanism: nn.Module) -> str:
    """The exported kind of a decoder attention: additive, luong, hard, none (else its class name)."""
    from attnlab.attention.additive import AdditiveAttention
    from attnlab.attention.hard import HardAttention
    from attnlab.attention.luong import LuongAttention
    from attnlab.models.seq2seq_attention import FixedContext

    if isinstance(mechanism, FixedContext):
        return "none"
    if isinstance(mechanism, HardAttention):
        return "hard" if type(mechanism.scorer) is AdditiveAttention else type(mechanism).__name__
    for cls, name in ((AdditiveAttention, "additive"), (LuongAttention, "luong")):
        if type(mechanism) is cls:
            return name
    return type(mechanism).__name__


def memory_scores(mechanism: nn.Module, query: Tensor, projected_keys: Tensor) -> Tensor:
    """e_j for one decoder step: ``query (N, Dq)``, ``projected_keys (N, S, P)`` -> ``(N, S)``.

    additive (Bahdanau): v^T tanh(W_q q + W_k k_j [+ b]); Luong dot / general: q . (W k_j);
    Luong concat: v^T tanh(W [q; k_j]); times g with Luong's ``scale``.
    """
    kind = mechanism_name(mechanism)
    if kind == "hard":
        return memory_scores(mechanism.scorer, query, projected_keys)
    if kind == "additive":
        q = F.linear(query, mechanism.query_proj.weight)  # (N, P)
        if mechanism.normalize:
            q = q + mechanism.bias
        return torch.tanh(q[:, None, :] + projected_keys) @ mechanism.effective_v()  # (N, S)
    if mechanism.score_name == "concat":
        q = F.linear(query, mechanism.concat_proj.weight[:, : mechanism.query_dim])  # (N, P)
        scores = torch.tanh(q[:, None, :] + projected_keys) @ mechanism.v
    else:
        scores = (projected_keys @ query[:, :, None])[:, :, 0]  # (N, S)
    return mechanism.g * scores if mechanism.scale else scores


EXPORTED = ("additive", "luong", "hard", "none")
EXPORTED_NAMES = ("bahdanau", "luong-dot", "luong-general", "luong-concat", "hard", "none")


def seq2seq_graphs(model: nn.Module) -> Exported:
    """The encoder and decoder graphs of a Seq2Seq and what ``export.json`` says of them."""
    from attnlab.attention.hard import HardAttention

    c = model.config
    mechanism = model.attention.mechanism
    kind = mechanism_name(mechanism)
    if isinstance(mechanism, HardAttention) and mechanism.training:
        raise AttnlabError(
            "seq2seq with sampled hard attention cannot be exported to ONNX: each step draws a random sample "
            "(REINFORCE), and an ONNX graph must be a function of its inputs; put the model in eval mode "
            "(argmax attention, what attnlab translate uses) to export it"
        )
    if kind not in EXPORTED:
        raise AttnlabError(
            f"seq2seq with attention={c.attention!r} ({type(mechanism).__name__}) is not exported to ONNX yet: "
            f"its step carries state this export does not write out (exported: {', '.join(EXPORTED_NAMES)})"
        )
    if c.cell != "gru":
        raise AttnlabError(
            f"seq2seq with cell={c.cell!r} cannot be exported yet: the encoder's final LSTM cell state at each "
            "sentence's own length needs per-step masking a traced graph does not have (GRU exports)"
        )
    b, s = 2, 6
    src = torch.randint(3, c.src_vocab_size, (b, s))
    src[1, -2:] = c.pad_id
    encoder = Seq2SeqEncoderGraph(model).eval()
    with torch.no_grad():
        encoded = encoder(src)
    extra = []
    state0 = model.attention.init_state(encoded[0], src != c.pad_id)
    if state0.projected_keys is not None:
        extra.append("projected_keys")
    if state0.fertility is not None:
        extra.append("fertility")
    enc_outputs = ["memory", "h", "feed", "previous", "cumulative", *extra]
    bs = {0: "batch", 1: "src_length"}
    axes = {"src_ids": bs, "memory": bs, "h": {1: "batch"}, "feed": {0: "batch"}, "previous": bs,
            "cumulative": bs, **{n: bs for n in extra}}
    enc_graph = Graph("encoder", encoder, (src,), ["src_ids"], enc_outputs, axes, exporter="torchscript", reason=(
        "torch.export traces nn.GRU with the example's source length fixed; the TorchScript exporter writes "
        "ONNX's GRU operator, whose sequence length stays dynamic"))

    state_names = ["h", "feed", "previous", "cumulative", "memory", "src_mask", *extra]
    encoded_by_name = dict(zip(enc_outputs, encoded))
    example_state = {**encoded_by_name, "feed": torch.randn(b, model.feed_dim), "src_mask": (src != c.pad_id).long()}
    decoder = Seq2SeqDecoderGraph(model, state_names).eval()
    dec_axes = {"input_ids": {0: "batch"}, "h": {1: "batch"}, "feed": {0: "batch"},
                "previous": bs, "cumulative": bs, "memory": bs, "src_mask": bs, **{n: bs for n in extra},
                "log_probs": {0: "batch"}, "next.h": {1: "batch"},
                "next.feed": {0: "batch"}, "next.previous": bs, "next.cumulative": bs}
    dec_outputs = ["log_probs", "next.h", "next.feed", "next.previous", "next.cumulative"]
    dec_graph = Graph(
        "decoder", decoder,
        (torch.randint(3, c.tgt_vocab_size, (b, 1)), torch.tensor(3), *(example_state[n] for n in state_names)),
        ["input_ids", "step", *state_names], dec_outputs, dec_axes,
    )
    info = {
        "config": {"src_vocab_size": c.src_vocab_size, "tgt_vocab_size": c.tgt_vocab_size, "pad_id": c.pad_id,
                   "bos_id": c.bos_id, "eos_id": c.eos_id, "max_len": c.max_len, "cell": c.cell,
                   "attention": c.attention, "feed_dim": model.feed_dim},
        "generation": {
            "graphs": ["encoder", "decoder"],
            "steps": [
                "encoder(src_ids) -> memory, h (the decoder's s_0), feed, previous, cumulative (the first "
                "step's state) and the attention's per-sentence tensors",
                "decoder(input_ids (N, 1) = bos_id first, step = tokens fed so far, src_mask = (src_ids != "
                "pad_id), the encoder's outputs by name) -> log_probs and next.X: feed each back as X",
                "beam search: reorder every state row with the chosen parents (h is (layers, N, H): axis 1)",
            ],
        },
    }
    return Exported([enc_graph, dec_graph], info)
