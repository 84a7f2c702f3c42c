"""BERT and ViT training steps, side by side with HuggingFace transformers (same work).

The peer and attnlab hold the same weights (``BERT.from_hf`` / ``ViT.from_hf``), run on
the same inputs in one process, and do the same work; one step is forward, loss,
backward and an AdamW update (both fused AdamW: HF Trainer's default optimizer and
attnlab's). Timings are interleaved medians (:func:`benchmarks.common.compare`); ratio =
HF time / attnlab time (> 1: attnlab faster).

- BERT: ``BertForMaskedLM`` (SDPA attention), hidden 256, 4 layers, 4 heads, FFN 1024,
  vocabulary 4000 (``attnlab train bert``'s), B=16, L=128: the MLM logits of every
  position and their loss (every position labeled, so neither side can skip a position).
- ViT: ``ViTForImageClassification`` (SDPA), 32x32x3 images, 4x4 patches (64 + 1
  tokens), hidden 256, 4 layers, 4 heads, FFN 1024, 10 classes, B=32: the classification
  loss through the whole last block on both sides (attnlab's ``class_logits``, which runs
  the last block for the class token alone, is timed separately as "less work").

    python -m benchmarks.encoders [--quick] [--threads N]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
import transformers as T

from attnlab.models import BERT, ViT
from attnlab.training.optim import adamw
from benchmarks.common import Comparison, compare, machine_line, print_table, train_step

T.logging.set_verbosity_error()
BERT_SHAPE = dict(vocab_size=4000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                  intermediate_size=1024, max_position_embeddings=128)
VIT_SHAPE = dict(image_size=32, patch_size=4, num_channels=3, hidden_size=256, num_hidden_layers=4,
                 num_attention_heads=4, intermediate_size=1024, num_labels=10)
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="sdpa")


def bert_pair() -> tuple[T.BertForMaskedLM, BERT]:
    torch.manual_seed(0)
    hf = T.BertForMaskedLM(T.BertConfig(**BERT_SHAPE, **NO_DROPOUT))
    return hf, BERT.from_hf(hf)


def vit_pair() -> tuple[T.ViTForImageClassification, ViT]:
    torch.manual_seed(0)
    hf = T.ViTForImageClassification(T.ViTConfig(**VIT_SHAPE, **NO_DROPOUT))
    return hf, ViT.from_hf(hf)


def bert_steps(bf16: bool, batch: int = 16, length: int = 128):
    """((HF model, its step), (attnlab model, its step)): every position's MLM logits,
    loss, backward, AdamW."""
    hf, ours = bert_pair()
    ids = torch.randint(5, BERT_SHAPE["vocab_size"], (batch, length), generator=torch.Generator().manual_seed(1))
    return ((hf, train_step(hf, lambda: hf(input_ids=ids, labels=ids).loss, torch.optim.AdamW(hf.parameters(), fused=True),
                            bf16)),
            (ours, train_step(ours, lambda: ours(ids, mlm_labels=ids).loss, adamw(ours.parameters()), bf16)))


def vit_steps(bf16: bool, batch: int = 32, less_work: bool = False):
    """((HF model, its step), (attnlab model, its step)): classification loss, backward, AdamW; ``less_work``:
    attnlab's ``class_logits`` (the last block for the class token only)."""
    hf, ours = vit_pair()
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(batch, 3, VIT_SHAPE["image_size"], VIT_SHAPE["image_size"], generator=g)
    labels = torch.randint(0, VIT_SHAPE["num_labels"], (batch,), generator=g)
    ours_loss = (lambda: F.cross_entropy(ours.class_logits(pixels), labels)) if less_work \
        else (lambda: ours(pixels, labels=labels).loss)
    return ((hf, train_step(hf, lambda: hf(pixel_values=pixels, labels=labels).loss,
                            torch.optim.AdamW(hf.parameters(), fused=True), bf16)),
            (ours, train_step(ours, ours_loss, adamw(ours.parameters()), bf16)))


def bert_train(bf16: bool, repeats: int) -> Comparison:
    (_, peer), (_, mine) = bert_steps(bf16)
    return compare(f"BERT train step {'bf16' if bf16 else 'fp32'}", peer, mine, repeats=repeats)


def vit_train(bf16: bool, repeats: int, less_work: bool = False) -> Comparison:
    name = f"ViT train step {'bf16' if bf16 else 'fp32'}" + (" (attnlab: class_logits, less work)" if less_work else "")
    (_, peer), (_, mine) = vit_steps(bf16, less_work=less_work)
    return compare(name, peer, mine, repeats=repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 5 if args.quick else 11
    print(f"machine: {machine_line()}\n")
    results = [bert_train(bf16, repeats) for bf16 in (False, True)] + [vit_train(bf16, repeats) for bf16 in (False, True)]
    results += [vit_train(False, repeats, less_work=True)]
    print_table("BERT and ViT training steps vs HuggingFace transformers (same weights, same work)",
                ["case", "HF (ms)", "attnlab (ms)", "HF / attnlab"],
                [[c.name, c.peer_s * 1e3, c.ours_s * 1e3, f"{c.ratio:.2f}x"] for c in results])
    print(f"load average after: {machine_line().rpartition('load average ')[2]}")


if __name__ == "__main__":
    main()
