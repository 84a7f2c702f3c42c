"""BERT and ViT forward+backward, side by side with HuggingFace transformers.

The peer and attnlab hold the same weights (``BERT.from_hf`` / ``ViT.from_hf``) and run
on the same inputs in one process; one step is forward, a loss, and backward (the
gradients are zeroed between steps). Timings are interleaved medians
(:func:`benchmarks.common.compare`); ratio = HF time / attnlab time (> 1: attnlab faster).
For BERT the step is the pre-training loss (MLM on 15% of the positions + NSP; attnlab
projects only the labeled positions onto the vocabulary, as BERT's own code does, HF
projects all) and, separately, a loss over all positions' logits (the same work on
both sides). Also timed: inference forward passes, and a padded batch (half the rows
padded to half length) where the attention mask matters.

    python -m benchmarks.encoders [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
import transformers as T

from attnlab.models import BERT, ViT
from benchmarks.common import compare, machine_line, print_table

BERT_SHAPE = dict(vocab_size=4000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=512, max_position_embeddings=128)
VIT_SHAPE = dict(image_size=32, patch_size=4, num_channels=3, hidden_size=128, num_hidden_layers=4,
                 num_attention_heads=4, intermediate_size=256, num_labels=10)


def train_step(model, inputs: dict, loss_of, call=None):
    """Zero the gradients, ``loss_of((call or model)(**inputs)).backward()``."""
    call = call or model

    def step():
        model.zero_grad(set_to_none=True)
        loss_of(call(**inputs)).backward()

    return step


def forward(model, inputs: dict):
    def run():
        with torch.no_grad():
            model(**inputs)

    return run


def bert_rows(batch: int, length: int, repeats: int) -> list[list[object]]:
    torch.manual_seed(0)
    hf = T.BertForPreTraining(T.BertConfig(**BERT_SHAPE, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    ours = BERT.from_hf(hf)
    ids = torch.randint(5, BERT_SHAPE["vocab_size"], (batch, length))
    labels = torch.where(torch.rand(ids.shape) < 0.15, ids, torch.full_like(ids, -100))
    nsp = torch.randint(0, 2, (batch,))
    padded = torch.ones_like(ids)
    padded[: batch // 2, length // 2 :] = 0
    rows = []
    for label, mask in (("full", torch.ones_like(ids)), ("padded", padded)):
        x = {"input_ids": ids, "attention_mask": mask}
        cases = [
            ("fwd+bwd MLM+NSP loss", train_step(hf, {**x, "labels": labels, "next_sentence_label": nsp}, lambda o: o.loss),
             train_step(ours, {**x, "mlm_labels": labels, "next_sentence_label": nsp}, lambda o: o.loss)),
            ("fwd+bwd all logits", train_step(hf, x, lambda o: o.prediction_logits.mean()),
             train_step(ours, x, lambda o: o.mlm_logits.mean())),
            ("forward", forward(hf, x), forward(ours, x)),
        ]
        for kind, peer, mine in cases:
            hf.train(kind != "forward")
            ours.train(kind != "forward")
            c = compare(f"BERT {kind}, {label}", peer, mine, repeats=repeats)
            rows.append([c.name, f"B={batch} L={length}", c.peer_s * 1e3, c.ours_s * 1e3, f"{c.ratio:.2f}x"])
    return rows


def vit_rows(batch: int, repeats: int) -> list[list[object]]:
    torch.manual_seed(0)
    hf = T.ViTForImageClassification(T.ViTConfig(**VIT_SHAPE))
    ours = ViT.from_hf(hf)
    pixels = torch.randn(batch, 3, VIT_SHAPE["image_size"], VIT_SHAPE["image_size"])
    labels = torch.randint(0, VIT_SHAPE["num_labels"], (batch,))
    rows = []
    for kind, peer, mine in (
        ("fwd+bwd classification loss", train_step(hf, {"pixel_values": pixels, "labels": labels}, lambda o: o.loss),
         train_step(ours, {"pixel_values": pixels}, lambda logits: F.cross_entropy(logits, labels), ours.class_logits)),
        ("fwd+bwd full forward", train_step(hf, {"pixel_values": pixels}, lambda o: o.logits.mean()),
         train_step(ours, {"pixel_values": pixels}, lambda o: o.logits.mean())),
        ("forward", forward(hf, {"pixel_values": pixels}), forward(ours, {"pixel_values": pixels})),
    ):
        hf.train(kind == "fwd+bwd")
        ours.train(kind == "fwd+bwd")
        c = compare(f"ViT {kind}", peer, mine, repeats=repeats)
        rows.append([c.name, f"B={batch} 32x32 P=4", c.peer_s * 1e3, c.ours_s * 1e3, f"{c.ratio:.2f}x"])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller batches, fewer repeats")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = 5 if args.quick else 15
    batch = 8 if args.quick else 16
    print(f"machine: {machine_line()}\n")
    rows = bert_rows(batch, 64, repeats) + vit_rows(batch * 2, repeats)
    print_table("BERT and ViT vs HuggingFace transformers (same weights)",
                ["case", "shape", "HF (ms)", "attnlab (ms)", "HF / attnlab"], rows)


if __name__ == "__main__":
    main()
