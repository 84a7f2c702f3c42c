"""``attnlab demo``: train, evaluate and explain a translator in a few minutes, offline.

1. generate the synthetic parallel corpus (gold alignments included), save it;
2. train the ``small`` Transformer within a time budget (``max_minutes``) and a step count;
3. decode the test split: BLEU, chrF, and AER of every cross-attention head;
4. print example translations with the alignment their attention implies;
5. write ``report.html`` (cross-attention heatmaps embedded), ``explorer.html`` (the
   interactive attention explorer of the examples, gold links outlined) and one summary
   line ``BLEU <x> | chrF <y> | AER <z> | <time>``.

Everything lands in ``out_dir``: ``data/`` (the corpus), ``model/`` (a Translator
checkpoint that ``attnlab translate --ckpt`` and ``attnlab viz --ckpt`` read),
``report.html``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from attnlab.apps.common import check_out, run_threads
from attnlab.apps.translate.app import attentions
from attnlab.apps.translate.evaluation import TranslationScores, evaluate_translator
from attnlab.apps.translate.explain import alignment_lines, pair_section
from attnlab.apps.translate.training import (
    TrainedTranslator,
    TranslatorSetup,
    paper_train_config,
    train_translator,
)
from attnlab.data.synthetic import synthetic_corpus
from attnlab.training import TrainResult
from attnlab.viz.explorer import write_page
from attnlab.viz.heatmap import figure_png
from attnlab.viz.report import Report, Section


@dataclass
class DemoSettings:
    """The demo's knobs; the defaults are ``attnlab demo``'s."""

    out_dir: str = "runs/demo"
    corpus: str = "default"
    preset: str = "small"
    steps: int = 3000
    max_minutes: float = 5.0
    batch_size: int = 32  # more updates per token: BLEU 90.5 after 2000 x 32 pairs, 85.5 after 1000 x 64
    lr: float = 2e-3
    warmup_steps: int = 100
    dropout: float = 0.0  # the synthetic corpus is large and noise-free: dropout only slows learning
    bf16: bool = False
    beam_size: int = 1
    examples: int = 3
    seed: int = 0
    progress: bool = True
    device: str = "cpu"
    threads: int | None = None
    save_every: int = 500
    resume: bool = False
    overwrite: bool = False


@dataclass
class DemoResult:
    scores: TranslationScores
    train: TrainResult
    summary: str
    report: Path


def example_indices(lengths: list[int], count: int) -> list[int]:
    """A short, a middle and a long sentence (``count`` evenly spread by length)."""
    order = sorted(range(len(lengths)), key=lambda n: (lengths[n], n))
    if count <= 1:
        return order[len(order) // 2 : len(order) // 2 + 1]
    return [order[round(k * (len(order) - 1) / (count - 1) * 0.9)] for k in range(count)]


def loss_curve(result: TrainResult) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(range(1, len(result.losses) + 1), result.losses, linewidth=0.8)
    ax.set_xlabel("update")
    ax.set_ylabel("training loss (label-smoothed)")
    fig.tight_layout()
    return figure_png(fig)


def build_report(trained: TrainedTranslator, scores: TranslationScores, summary: str, picked: list[int]) -> Report:
    test, translator = trained.splits.test, trained.translator
    report = Report("attnlab demo: a Transformer translator and what its attention learned")
    report.add(Section("Summary", code=summary, images=[loss_curve(trained.result)], captions=["training loss"]))
    if scores.alignment is not None:
        per_head = scores.alignment.per_head
        table = [["decoder layer", *[f"head {h}" for h in range(per_head.shape[1])]]]
        table += [[str(layer), *[f"{v:.3f}" for v in per_head[layer].tolist()]] for layer in range(per_head.shape[0])]
        table.append(["average of all heads", f"{scores.alignment.average:.3f}"])
        text = ("Alignment error rate (lower is better) of each cross-attention head against the gold word "
                "alignments of the test split.")
        report.add(Section("Alignment error rate per head", text=text, table=table))
    best = scores.alignment.best[:2] if scores.alignment is not None else None
    for n in picked:
        gold = test.alignments[n] if test.alignments is not None else None
        report.add(pair_section(  # on the reference: the gold links index its words
            translator, test.src[n], test.tgt[n], head=best, gold=gold, heading=f"Example: {test.src[n]}",
            notes=(f"model:  {scores.hypotheses[n]}", "(attention with the reference target fed to the decoder)"),
        ))
    return report


def run_demo(settings: DemoSettings | None = None, echo: Callable[[str], None] = print) -> DemoResult:
    """The whole demo; ``echo`` receives the lines to show the user."""
    settings = settings or DemoSettings()
    started = time.monotonic()
    out = check_out(settings.out_dir, resume=settings.resume, overwrite=settings.overwrite)
    run_threads(settings.threads, settings.out_dir, resume=settings.resume, budgeted=True)  # always time-budgeted
    echo(f"generating the synthetic corpus ({settings.corpus}) ...")
    splits = synthetic_corpus(settings.corpus, seed=settings.seed)
    splits.save(out / "data")
    echo(f"  {splits.describe()}")
    echo(f"training the {settings.preset} Transformer: {settings.steps} steps or as many as fit in "
         f"{settings.max_minutes:g} minutes on {torch.get_num_threads()} thread(s) ...")
    setup = TranslatorSetup(
        corpus=settings.corpus, preset=settings.preset, batch_size=settings.batch_size, seed=settings.seed,
        model_overrides={"dropout": settings.dropout},
    )
    config = paper_train_config(
        out_dir=str(out / "model"), steps=settings.steps, lr=settings.lr, warmup_steps=settings.warmup_steps,
        bf16=settings.bf16, seed=settings.seed, max_time_s=settings.max_minutes * 60, progress=settings.progress,
        log_every=50, device=settings.device, save_every=settings.save_every,
    )
    trained = train_translator(setup, config, splits=splits, fit_budget=True, resume=settings.resume)
    if trained.result.interrupted:  # the Trainer has said where the checkpoint is
        raise KeyboardInterrupt
    echo(f"  trained {trained.result.step} steps in {trained.result.elapsed_s / 60:.1f} min")
    echo(f"evaluating on {len(splits.test)} test sentences ...")
    scores = evaluate_translator(trained.translator, splits.test, beam_size=settings.beam_size)
    picked = example_indices([len(s.split()) for s in splits.test.src], settings.examples)
    best = scores.alignment.best if scores.alignment is not None else None
    for n in picked:
        echo(f"\nsource:     {splits.test.src[n]}\ntranslated: {scores.hypotheses[n]}\nreference:  {splits.test.tgt[n]}")
        pair = trained.translator.cross_attention(splits.test.src[n], scores.hypotheses[n])
        echo("\n".join(alignment_lines(pair, splits.test.src[n], scores.hypotheses[n], best[:2] if best else None)))
    if best is not None:
        echo(f"\nbest aligning head: layer {best[0]} head {best[1]} (AER {best[2]:.3f}); "
             f"average of all heads: AER {scores.alignment.average:.3f}")
    summary = scores.summary(time.monotonic() - started)
    report_path = out / "report.html"
    build_report(trained, scores, summary, picked).write(report_path)
    explorer_path = write_explorer(trained, picked, out / "explorer.html")
    echo(f"report: {report_path}   explorer: {explorer_path}   model: {out / 'model'}")
    echo(summary)
    return DemoResult(scores, trained.result, summary, report_path)


def write_explorer(trained: TrainedTranslator, picked: list[int], path: Path) -> Path:
    """The explorer page of the example sentences, the reference fed to the decoder so the
    gold word links (outlined in the page, AER per head) index its tokens."""
    test, translator = trained.splits.test, trained.translator
    sources, targets = [test.src[n] for n in picked], [test.tgt[n] for n in picked]
    explained = attentions(translator, sources, targets=targets)
    if test.alignments is not None:
        gold = []
        for n, source, target in zip(picked, sources, targets):
            src_words = translator.src_tokenizer.word_ids(source)
            tgt_words = translator.tgt_tokenizer.word_ids(target)
            gold.append({(t, s) for t, tw in enumerate(tgt_words) for s, sw in enumerate(src_words)
                         if (sw, tw) in test.alignments[n]})
        explained.extras["gold"] = gold
    return write_page([explained], path, title="attnlab demo: the translator's attention")
