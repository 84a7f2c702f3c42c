"""Does bf16 autocast train as well as fp32? Loss after N updates, fp32 and bf16, over seeds.

For GPT, BERT, ViT and the Transformer translator with the models of ``benchmarks/goals.py``
(GPT at its batch, the others at half theirs, to keep the runs short), each seed builds
one initial model and one stream of batches; that model is trained N
updates in fp32 and, from the same start on the same batches, under bf16 autocast
(fp32 master weights and AdamW state, the loss in fp32: the recipe of attnlab's Trainer).
The score is the fp32 loss on held-out batches after training. bf16 "trains as well"
when its mean over seeds is within the run-to-run spread of fp32 (two standard
deviations of the fp32 seeds). Also printed: the median step time of each precision
(at these batches; ``benchmarks/goals.py`` times both precisions at the goals' shapes).
Each model's row is printed when it is done.

Data (embedded, no download): GPT and BERT read bytes of the Python standard library's
source (GPT: next byte; BERT: 15% of the positions masked); ViT: scikit-learn's 8x8
digits upscaled to 32x32x3; the translator: the synthetic corpus.

    nice -n 10 python -m benchmarks.bf16_curve [--steps 60] [--seeds 3] [--only gpt,bert,vit,translator]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnlab.data.batching import TranslationBatches
from attnlab.data.images import load_digits
from attnlab.data.stdlib_corpus import stdlib_corpus
from attnlab.data.synthetic import synthetic_corpus
from attnlab.data.tokenizer import WordTokenizer
from attnlab.models.bert import BERT, bert_config
from attnlab.models.gpt import GPT, gpt_config
from attnlab.models.transformer import Transformer, TransformerConfig
from attnlab.models.vit import ViT, vit_config
from attnlab.training.optim import adamw
from benchmarks.common import machine_line, print_table, train_step

MASK_ID = 1  # a byte that Python source does not hold


@dataclass
class Task:
    """A model factory and its batches: ``loss(model, batch)``; ``batch(seed, step)``;
    held-out batches ``valid``."""

    build: Callable[[], torch.nn.Module]
    batch: Callable[[int, int], dict]
    loss: Callable[[torch.nn.Module, dict], torch.Tensor]
    valid: list[dict]


def _bytes(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    corpus = stdlib_corpus(max_chars=n)
    as_ids = lambda text: torch.tensor(list(text.encode("utf-8", "replace")), dtype=torch.long)  # noqa: E731
    return as_ids(corpus.train), as_ids(corpus.validation[: n // 10] or corpus.train[-n // 10:])


def _windows(stream: torch.Tensor, rows: int, length: int, g: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, len(stream) - length - 1, (rows,), generator=g)
    return torch.stack([stream[s : s + length] for s in starts.tolist()])  # (rows, length)


def _masked(ids: torch.Tensor, g: torch.Generator) -> dict:
    chosen = torch.rand(ids.shape, generator=g) < 0.15
    return {"ids": ids.masked_fill(chosen, MASK_ID), "labels": ids.masked_fill(~chosen, -100)}


def gpt_task() -> Task:
    train, valid = _bytes(3_000_000)
    batch = lambda seed, step: {"ids": _windows(train, 8, 128, torch.Generator().manual_seed(seed * 100_003 + step))}  # noqa: E731
    g = torch.Generator().manual_seed(7)
    return Task(lambda: GPT(gpt_config("char-base", vocab_size=256, dropout=0.0, attention_dropout=0.0)), batch,
                lambda m, b: m(b["ids"], labels=b["ids"]).loss, [{"ids": _windows(valid, 8, 128, g)} for _ in range(4)])


def bert_task() -> Task:
    train, valid = _bytes(3_000_000)
    config = bert_config("small", vocab_size=256, hidden_size=256, num_layers=4, num_heads=4, intermediate_size=1024,
                         max_positions=128, head="mlm", add_pooler=False, dropout=0.0, attention_dropout=0.0)

    def batch(seed, step):
        g = torch.Generator().manual_seed(seed * 100_003 + step)
        return _masked(_windows(train, 8, 128, g), g)

    g = torch.Generator().manual_seed(7)
    return Task(lambda: BERT(config), batch, lambda m, b: m(b["ids"], mlm_labels=b["labels"]).loss,
                [_masked(_windows(valid, 8, 128, g), g) for _ in range(4)])


def vit_task() -> Task:
    digits = load_digits()
    images = F.interpolate(digits.images, size=32, mode="bilinear").repeat(1, 3, 1, 1)  # (N, 3, 32, 32)
    cut = len(images) - 256
    config = vit_config("digits", image_size=32, patch_size=4, num_channels=3, hidden_size=256, num_layers=4,
                        num_heads=4, intermediate_size=1024, dropout=0.0)

    def batch(seed, step):
        rows = torch.randint(0, cut, (16,), generator=torch.Generator().manual_seed(seed * 100_003 + step))
        return {"pixels": images[rows], "labels": digits.labels[rows]}

    valid = [{"pixels": images[cut + i : cut + i + 64], "labels": digits.labels[cut + i : cut + i + 64]}
             for i in range(0, 256, 64)]
    return Task(lambda: ViT(config), batch, lambda m, b: m(b["pixels"], labels=b["labels"]).loss, valid)


def translator_task() -> Task:
    splits = synthetic_corpus("default", num_train=6000, num_valid=256, num_test=10)
    src, tgt = WordTokenizer.train(splits.train.src), WordTokenizer.train(splits.train.tgt)
    config = TransformerConfig(src_vocab_size=src.vocab_size, tgt_vocab_size=tgt.vocab_size, d_model=256, num_heads=4,
                               num_encoder_layers=3, num_decoder_layers=3, d_ff=1024, dropout=0.0, final_norm=True)
    valid = TranslationBatches(splits.valid, src, tgt, batch_size=64)
    streams: dict[int, TranslationBatches] = {}

    def batch(seed, step):
        if seed not in streams:
            streams[seed] = TranslationBatches(splits.train, src, tgt, batch_size=32, seed=seed)
        return streams[seed].batch(step)

    return Task(lambda: Transformer(config), batch, lambda m, b: m(b["src_ids"], b["tgt_in"], b["tgt_out"]).loss,
                [valid.batch(i) for i in range(4)])


TASKS = {"gpt": gpt_task, "bert": bert_task, "vit": vit_task, "translator": translator_task}


def train(task: Task, seed: int, bf16: bool, steps: int) -> tuple[float, float]:
    """(held-out fp32 loss after ``steps`` updates, median seconds per update)."""
    torch.manual_seed(seed)
    model = task.build()
    optimizer = adamw(model.parameters(), lr=5e-4)
    times = []
    for step in range(steps):
        batch = task.batch(seed, step)
        update = train_step(model, lambda b=batch: task.loss(model, b), optimizer, bf16)
        start = time.perf_counter()
        update()
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        loss = statistics.fmean(float(task.loss(model, b)) for b in task.valid)
    return loss, statistics.median(times)


def rows(names: list[str], steps: int, seeds: int):
    """One table row per model, yielded when its runs are done."""
    for name in names:
        task = TASKS[name]()
        losses: dict[bool, list[float]] = {False: [], True: []}
        seconds: dict[bool, list[float]] = {False: [], True: []}
        for seed in range(seeds):
            for bf16 in (False, True):  # interleaved: the load hits both alike
                loss, step_s = train(task, seed, bf16, steps)
                losses[bf16].append(loss)
                seconds[bf16].append(step_s)
        fp32_mean, fp32_std = statistics.fmean(losses[False]), statistics.stdev(losses[False])
        bf16_mean = statistics.fmean(losses[True])
        gap = abs(bf16_mean - fp32_mean)
        fp32_s, bf16_s = statistics.median(seconds[False]), statistics.median(seconds[True])
        yield [
            name, steps, ", ".join(f"{x:.4f}" for x in losses[False]), f"{fp32_mean:.4f} ± {fp32_std:.4f}",
            ", ".join(f"{x:.4f}" for x in losses[True]), f"{bf16_mean:.4f}", f"{gap:.4f}",
            "yes" if gap <= 2 * fp32_std else "no", f"{fp32_s * 1e3:.0f}", f"{bf16_s * 1e3:.0f}", f"{fp32_s / bf16_s:.2f}x",
        ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="updates per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default=",".join(TASKS), help=f"comma-separated, of {list(TASKS)}")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    names = args.only.split(",")
    unknown = sorted(set(names) - set(TASKS))
    if unknown or args.seeds < 2 or args.steps < 1:
        parser.error(f"--only: choose from {list(TASKS)} (got {unknown}); --seeds >= 2, --steps >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine_line()}\n")
    done = []
    for row in rows(names, args.steps, args.seeds):
        done.append(row)
        print("| " + " | ".join(str(x) for x in row) + f" |  ({machine_line()})", flush=True)
    print_table(
        f"bf16 autocast vs fp32: held-out loss after {args.steps} updates ({args.seeds} seeds, same starts and batches)",
        ["model", "updates", "fp32 losses", "fp32 mean ± std", "bf16 losses", "bf16 mean", "|bf16 - fp32|",
         "within 2 std", "fp32 ms/step", "bf16 ms/step", "bf16 speed-up"],
        done,
    )
    print(f"after: {machine_line()}")


if __name__ == "__main__":
    main()
