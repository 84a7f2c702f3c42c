"""Translation batching, attnlab side by side with the usual PyTorch recipe in one process.

The peer is the recipe of the PyTorch translation tutorials: a shuffled
``torch.utils.data.DataLoader`` over pre-encoded pairs whose ``collate_fn`` pads with
``torch.nn.utils.rnn.pad_sequence``. attnlab's :class:`TranslationBatches` groups pairs
of similar length. Both see the same pairs, encoded by the same tokenizers, batch size
64, one epoch of the synthetic ``default`` corpus. Reported: seconds to build an epoch
of batches and the share of padding among the source/target tokens a model would process
(what padding costs in the model's matmuls).

Run: python -m benchmarks.data [--quick]
"""

from __future__ import annotations

import argparse

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

from attnlab.data import TranslationBatches, WordTokenizer, synthetic_corpus
from benchmarks.common import compare, machine_line, print_table


def padding_share(batches: list[dict[str, torch.Tensor]], src_pad: int, tgt_pad: int) -> float:
    padded = sum(b["src_ids"].numel() + b["tgt_out"].numel() for b in batches)
    real = sum(int((b["src_ids"] != src_pad).sum()) + int((b["tgt_out"] != tgt_pad).sum()) for b in batches)
    return 1 - real / padded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    corpus = synthetic_corpus("default", num_train=5000 if args.quick else 30000).train
    src_tok, tgt_tok = WordTokenizer.train(corpus.src), WordTokenizer.train(corpus.tgt)
    ours = TranslationBatches(corpus, src_tok, tgt_tok, batch_size=64, seed=0)
    bos, eos = torch.tensor([tgt_tok.bos_id]), torch.tensor([tgt_tok.eos_id])
    pairs = [
        (torch.tensor(s), torch.cat([bos, torch.tensor(t)]), torch.cat([torch.tensor(t), eos]))
        for s, t in zip(src_tok.encode_batch(corpus.src), tgt_tok.encode_batch(corpus.tgt))
    ]

    def collate(items):
        src, tgt_in, tgt_out = zip(*items)
        return {"src_ids": pad_sequence(src, batch_first=True, padding_value=src_tok.pad_id),
                "tgt_in": pad_sequence(tgt_in, batch_first=True, padding_value=tgt_tok.pad_id),
                "tgt_out": pad_sequence(tgt_out, batch_first=True, padding_value=tgt_tok.pad_id)}

    loader = DataLoader(pairs, batch_size=64, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))

    def peer_epoch():
        return list(loader)

    def our_epoch():
        return [ours.batch(step) for step in range(ours.steps_per_epoch)]

    timing = compare("epoch", peer_epoch, our_epoch, repeats=3 if args.quick else 5, warmup=1)
    peer_pad = padding_share(peer_epoch(), src_tok.pad_id, tgt_tok.pad_id)
    our_pad = padding_share(our_epoch(), src_tok.pad_id, tgt_tok.pad_id)
    print(machine_line())
    print_table(
        f"One epoch of translation batches ({len(corpus)} pairs, batch size 64)",
        ["", "DataLoader + pad_sequence", "attnlab TranslationBatches", "ratio"],
        [["build an epoch (s)", timing.peer_s, timing.ours_s, f"{timing.ratio:.2f}x"],
         ["padding share of tokens", f"{peer_pad:.1%}", f"{our_pad:.1%}",
          f"{(1 - our_pad) / (1 - peer_pad):.2f}x less work per real token"]],
    )


if __name__ == "__main__":
    main()
