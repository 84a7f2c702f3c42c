"""Transformer translator speed, side by side in one process on the same weights and batches.

Training (one optimizer update on the same batch, fused AdamW on both sides):
  peer  = token embeddings + sinusoidal positions + ``torch.nn.Transformer`` + output layer
          tied to the target embedding
  ours  = ``attnlab.models.Transformer`` with the peer's encoder-decoder weights loaded,
  in fp32 and under bf16 autocast; reported as target tokens per second and ratios.
  :func:`translator_train` is the issue's shape: d 256, 4 heads, 3 + 3 layers, FFN 1024,
  vocabularies of 1000, B=64 pairs padded to S = T = 24 (lengths 12-24 drawn at random).
Decoding (the test sentences of the synthetic corpus):
  peer  = greedy decoding that re-runs ``nn.Transformer`` on the whole prefix every step
          (what a model without a KV cache does)
  ours  = cached greedy and beam search (K = 4) from ``attnlab.evaluation.decoding``,
  reported as sentences per second.

    python -m benchmarks.translate [--preset small] [--batch-size 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from attnlab.config import preset
from attnlab.data.batching import TranslationBatches
from attnlab.data.synthetic import synthetic_corpus
from attnlab.data.tokenizer import WordTokenizer
from attnlab.evaluation.decoding import beam_search, greedy_search
from attnlab.models.transformer import TRANSFORMER_PRESETS, Transformer, TransformerConfig
from attnlab.training.optim import adamw
from benchmarks.common import Comparison, compare, machine_line, median_time, print_table
from benchmarks.common import train_step as update


class TorchTranslator(nn.Module):
    """The peer: the same architecture around ``torch.nn.Transformer`` (with its final norms)."""

    def __init__(self, ours: Transformer):
        super().__init__()
        c = ours.config
        self.config = c
        self.core = nn.Transformer(
            c.d_model, c.num_heads, c.num_encoder_layers, c.num_decoder_layers, c.d_ff,
            dropout=c.dropout, batch_first=True, norm_first=c.norm_first,
        )
        self.src_embed = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_embed = nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.generator = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        self.generator.weight = self.tgt_embed.weight
        self.register_buffer("positions", ours.positions.clone())
        ours.stack.load_torch(self.core)
        self.src_embed.load_state_dict(ours.src_embed.state_dict())
        self.tgt_embed.load_state_dict(ours.tgt_embed.state_dict())

    def embed(self, ids, embedding):
        return embedding(ids) * math.sqrt(self.config.d_model) + self.positions[: ids.shape[1]]

    def forward(self, src_ids, tgt_ids, labels):
        pad = src_ids == self.config.pad_id
        causal = nn.Transformer.generate_square_subsequent_mask(tgt_ids.shape[1])
        hidden = self.core(
            self.embed(src_ids, self.src_embed), self.embed(tgt_ids, self.tgt_embed), tgt_mask=causal,
            src_key_padding_mask=pad, memory_key_padding_mask=pad, tgt_is_causal=True,
        )
        logits = self.generator(hidden)
        return nn.functional.cross_entropy(
            logits.float().flatten(0, 1), labels.flatten(), ignore_index=self.config.pad_id, label_smoothing=0.1
        )

    @torch.no_grad()
    def greedy(self, src_ids, max_len):
        """Uncached greedy decoding: the whole prefix is recomputed every step."""
        prefix = torch.full((src_ids.shape[0], 1), self.config.bos_id, dtype=torch.long)
        pad = src_ids == self.config.pad_id
        memory = self.core.encoder(self.embed(src_ids, self.src_embed), src_key_padding_mask=pad)
        for _ in range(max_len):
            causal = nn.Transformer.generate_square_subsequent_mask(prefix.shape[1])
            hidden = self.core.decoder(self.embed(prefix, self.tgt_embed), memory, tgt_mask=causal,
                                       memory_key_padding_mask=pad, tgt_is_causal=True)
            nxt = self.generator(hidden[:, -1]).argmax(-1)
            prefix = torch.cat([prefix, nxt[:, None]], dim=1)
            if bool((prefix == self.config.eos_id).any(1).all()):
                break
        return prefix


def train_step(model, optimizer, batch, bf16: bool):
    def loss():
        out = model(batch["src_ids"], batch["tgt_in"], batch["tgt_out"])
        return out if isinstance(out, torch.Tensor) else out.loss

    return update(model, loss, optimizer, bf16)


def padded_batch(config: TransformerConfig, batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """``src_ids``, ``tgt_in``, ``tgt_out`` ``(B, length)``: random ids, each row's real length
    drawn from [length / 2, length], padding after it (``tgt_in`` starts with BOS)."""
    g = torch.Generator().manual_seed(seed)
    first = max(config.bos_id, config.eos_id, config.pad_id) + 1

    def rows(vocab):
        ids = torch.randint(first, vocab, (batch, length), generator=g)
        lengths = torch.randint(length // 2, length + 1, (batch, 1), generator=g)
        return ids.masked_fill(torch.arange(length) >= lengths, config.pad_id), lengths

    src, _ = rows(config.src_vocab_size)
    tgt, lengths = rows(config.tgt_vocab_size)
    tgt_in = torch.cat([torch.full((batch, 1), config.bos_id), tgt[:, :-1]], 1).masked_fill(
        torch.arange(length) > lengths, config.pad_id)
    return {"src_ids": src, "tgt_in": tgt_in, "tgt_out": tgt}


def translator_train(bf16: bool, repeats: int) -> Comparison:
    """The issue's translator training step: nn.Transformer + embeddings + tied output vs attnlab."""
    torch.manual_seed(0)
    config = TransformerConfig(d_model=256, num_heads=4, num_encoder_layers=3, num_decoder_layers=3, d_ff=1024,
                               dropout=0.0, final_norm=True)
    ours = Transformer(config)
    peer = TorchTranslator(ours)
    batch = padded_batch(config, 64, 24)
    return compare(
        f"translator train step {'bf16' if bf16 else 'fp32'}",
        train_step(peer, torch.optim.AdamW(peer.parameters(), fused=True), batch, bf16),
        train_step(ours, adamw(ours.parameters()), batch, bf16), repeats=repeats,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sentences", type=int, default=128, help="test sentences to decode")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny preset, fewer sentences and repeats")
    args = parser.parse_args()
    if args.quick:
        args.preset, args.sentences, args.repeats = "tiny", 32, 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    splits = synthetic_corpus("default", num_train=3000, num_valid=10, num_test=args.sentences)
    src_tok, tgt_tok = WordTokenizer.train(splits.train.src), WordTokenizer.train(splits.train.tgt)
    config = preset(TRANSFORMER_PRESETS, args.preset, src_vocab_size=src_tok.vocab_size,
                    tgt_vocab_size=tgt_tok.vocab_size, final_norm=True, dropout=0.0)
    ours = Transformer(config)
    peer = TorchTranslator(ours)
    batch = TranslationBatches(splits.train, src_tok, tgt_tok, batch_size=args.batch_size).batch(0)
    tokens = int((batch["tgt_out"] != config.pad_id).sum())
    print(machine_line() + f"; preset {args.preset}, batch {tuple(batch['src_ids'].shape)} -> {tokens} target tokens\n")

    rows = []
    for bf16 in (False, True):
        r = compare(
            f"train step {'bf16' if bf16 else 'fp32'}",
            train_step(peer, torch.optim.AdamW(peer.parameters(), fused=True), batch, bf16),
            train_step(ours, adamw(ours.parameters()), batch, bf16), repeats=args.repeats,
        )
        rows.append([r.name, f"{tokens / r.peer_s:.0f} tok/s", f"{tokens / r.ours_s:.0f} tok/s", r.ratio])
    print_table("Training (target tokens/s)", ["case", "nn.Transformer", "attnlab", "speed-up"], rows)

    src = TranslationBatches(splits.test, src_tok, tgt_tok, batch_size=args.sentences).batch(0)["src_ids"]
    n, max_len = src.shape[0], 2 * src.shape[1] + 10
    ours.eval()
    peer.eval()
    ids = dict(bos_id=config.bos_id, eos_id=config.eos_id, max_len=max_len)
    peer_s = median_time(lambda: peer.greedy(src, max_len), repeats=args.repeats)
    greedy_s = median_time(lambda: greedy_search(ours, src, **ids), repeats=args.repeats)
    beam_s = median_time(lambda: beam_search(ours, src, beam_size=4, **ids), repeats=args.repeats)
    print_table(
        f"Decoding {n} sentences (sentences/s)", ["decoder", "sentences/s", "vs uncached greedy"],
        [["nn.Transformer greedy, no cache", n / peer_s, 1.0], ["attnlab greedy, KV cache", n / greedy_s, peer_s / greedy_s],
         ["attnlab beam 4, KV cache", n / beam_s, peer_s / beam_s]],
    )


if __name__ == "__main__":
    main()
