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

from attnlab.apps.common import TrainSettings, at_least, at_most, check_out, train_config
from attnlab.apps.translate.app import MAX_BEAM, attentions
from attnlab.apps.translate.evaluation import TranslationScores, evaluate_translator
from attnlab.apps.translate.explain import alignment_lines, pair_section
from attnlab.apps.translate.training import (
    TrainedTranslator,
    TranslatorSetup,
    paper_train_config,
    train_translator,
)
from attnlab.data.synthetic import synthetic_corpus
from attnlab.errors import AttnlabError
from attnlab.training import TrainResult
from attnlab.training.progress import Heartbeat
from attnlab.viz.explorer import write_page
from attnlab.viz.heatmap import figure_png
from attnlab.viz.report import Report, Section

DEFAULT_STEPS = 3000  # the schedule's length when --steps is not given and no budget sizes it


@dataclass
class DemoSettings(TrainSettings):
    """The demo's knobs (the shared run settings, the demo's own defaults); the defaults are
    ``attnlab demo``'s. ``steps`` None: as many as fit in ``max_minutes`` (the demo is
    always time-budgeted)."""

    out: str = "runs/demo"
    max_minutes: float | None = 5.0
    batch_size: int = 32  # more updates per token: BLEU 90.5 after 2000 x 32 pairs, 85.5 after 1000 x 64
    lr: float = 2e-3
    dropout: float | None = 0.0  # the synthetic corpus is large and noise-free: dropout only slows learning
    save_every: int | None = 500
    corpus: str = "default"
    preset: str = "small"
    beam: int = 1
    examples: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_minutes is None:
            raise AttnlabError("demo: --max-minutes is required (the demo is time-budgeted)")
        at_least(1, beam=self.beam, examples=self.examples)
        at_most(MAX_BEAM, beam=self.beam)


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
        table.append(["head-averaged map (all heads, all layers)", f"{scores.alignment.average:.3f}"])
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
    started = settings.started
    out = check_out(settings.out, resume=settings.resume, overwrite=settings.overwrite, wait=settings.wait, kinds=("transformer", "seq2seq"))
    settings.apply_threads()
    echo(f"generating the synthetic corpus ({settings.corpus}) ...")
    with Heartbeat("generating the synthetic corpus", enabled=settings.progress) as beat:
        splits = synthetic_corpus(settings.corpus, seed=settings.seed, on_progress=beat.update)
    splits.save(out / "data")
    echo(f"  {splits.describe()}")
    length = f"{settings.steps} updates, stopped" if settings.steps else "as many updates as fit"
    echo(f"training the {settings.preset} Transformer: {length} within {settings.max_minutes:g} minutes in all "
         f"on {torch.get_num_threads()} thread(s) ...")
    setup = TranslatorSetup(
        corpus=settings.corpus, preset=settings.preset, batch_size=settings.batch_size, seed=settings.seed,
        model_overrides={"dropout": settings.dropout},
    )
    base = paper_train_config()
    config = train_config(settings, steps=settings.steps or DEFAULT_STEPS, out_dir=str(out / "model"),
                          betas=base.betas, eps=base.eps, log_every=50)
    trained = train_translator(setup, config, splits=splits, fit_budget=settings.steps is None,
                               resume=settings.resume, started=started)
    if trained.result.interrupted:  # the Trainer has said where the checkpoint is
        raise KeyboardInterrupt
    echo(f"  trained {trained.result.step} steps in {trained.result.elapsed_s / 60:.1f} min")
    echo(f"evaluating on {len(splits.test)} test sentences ...")
    with Heartbeat(f"decoding {len(splits.test)} test sentences", enabled=settings.progress) as beat:
        scores = evaluate_translator(trained.translator, splits.test, beam_size=settings.beam, on_progress=beat.update)
    picked = example_indices([len(s.split()) for s in splits.test.src], settings.examples)
    best = scores.alignment.best if scores.alignment is not None else None
    for n in picked:
        echo(f"\nsource:     {splits.test.src[n]}\ntranslated: {scores.hypotheses[n]}\nreference:  {splits.test.tgt[n]}")
        pair = trained.translator.cross_attention(splits.test.src[n], scores.hypotheses[n])
        echo("\n".join(alignment_lines(pair, splits.test.src[n], scores.hypotheses[n], best[:2] if best else None)))
    if best is not None:
        echo(f"\nalignment error rate (AER, lower is better) against the gold word links:\n"
             f"  best single head: layer {best[0]} head {best[1]}, AER {best[2]:.3f}\n"
             f"  head-averaged map (every head of every decoder layer): AER {scores.alignment.average:.3f}")
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
