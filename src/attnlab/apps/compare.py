"""Attention variants side by side on one task: the library behind ``attnlab compare``.

Every variant (the RNN translator with each attention of
:data:`attnlab.models.seq2seq_attention.ATTENTION_NAMES`, and the Transformer) is trained on
the same corpus, tokenizers, batches and budget (``steps`` updates, or ``max_minutes`` of wall
time shared equally), each in a fresh process so that its peak memory
is its own, and then measured on the same test sentences. The corpus is made once, by this
process, and written as TSV (``out/corpus``) for the variants to read.

``max_minutes`` covers the whole command. A variant's process costs a fixed ``F`` seconds
beside its training (start-up, imports, reading the corpus, the budget's probe updates, the
test decoding and measurements); with ``R`` seconds left and ``k`` variants to go, the next
one trains for

    T_train = max(R / k - F, MIN_TRAIN_SHARE * R / k)

``F`` being the largest fixed cost measured so far (a variant's wall time minus its training
time), before the first one :data:`FIRST_FIXED_GUESS` of its equal share. The last variants
absorb the first guess's error; the command ends within ``max_minutes`` plus the amount by
which a later variant's fixed cost exceeds the largest one measured before it (and the final
report, a few seconds), unless the fixed costs alone exceed the time left: then the floor
applies, the command overruns, and it says so.

Each variant is measured by:

    BLEU, chrF           greedy decoding of the test split (sacrebleu)
    AER                  word links read off the teacher-forced attention vs the gold
                         alignments (the best head for the Transformer; n/a for ``none``)
    BLEU by length       BLEU of the test sentences grouped by source length
    parameters, training tokens/s, decoding sentences/s, peak resident memory (MiB)

:func:`write_report` writes ``results.json``, ``table.md``, a bar chart and one HTML page
with the alignment heatmaps of one long test sentence, every variant side by side.

``bahdanau-guided`` (Bahdanau attention trained with guided alignment on the corpus' gold
alignments, :mod:`attnlab.attention.guided_alignment`) is a supervised reference for the AER
column, not an unsupervised result; it runs only when asked (``--variants``).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from attnlab.apps.common import EVAL_SHARE, TrainSettings, at_least, check_out
from attnlab.apps.translate.evaluation import evaluate_translator
from attnlab.apps.translate.training import (
    TrainedTranslator,
    TranslatorSetup,
    load_splits,
    paper_train_config,
    rnn_train_config,
    train_translator,
)
from attnlab.config import config_from_dict, config_to_dict
from attnlab.data.corpus import CorpusSplits, ParallelCorpus
from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import bleu
from attnlab.io import read_json, write_json, write_text
from attnlab.models.seq2seq_attention import ATTENTION_NAMES

# supervised variants: name -> (attention, guided alignment weight); trained on the gold alignments
GUIDED_VARIANTS = {"bahdanau-guided": ("bahdanau", 1.0)}
DEFAULT_VARIANTS = (*ATTENTION_NAMES, "transformer")
VARIANTS = (*DEFAULT_VARIANTS, *GUIDED_VARIANTS)
LENGTH_BUCKETS = ((1, 9), (10, 14), (15, 19), (20, 99))  # source words, inclusive
RESULT_FILE = "result.json"
DEFAULT_STEPS = 800  # per variant, when --steps is not given and no budget sizes it
CORPUS_FOLDER = "corpus"  # in --out: the corpus every variant reads
FIRST_FIXED_GUESS = 0.3  # of the first variant's equal share: its fixed cost, before any is measured
MIN_TRAIN_SHARE = 0.25  # of an equal share: the least training time a variant gets


@dataclass
class CompareSettings(TrainSettings):
    """What to compare and with which budget (the same for every variant): the shared run
    settings (``steps`` per variant, default 800; ``max_minutes`` for all variants together,
    shared equally, each variant's schedule sized to its share when ``steps`` is not given)."""

    variants: list[str] = field(default_factory=lambda: list(DEFAULT_VARIANTS))
    corpus: str = "default"
    batch_size: int = 64
    lr: float = 3e-3
    seq2seq_preset: str = "compact"
    transformer_preset: str = "small"
    test_sentences: int = 500
    out: str = "runs/compare"

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise AttnlabError(f"variants: expected some of {list(VARIANTS)}, got {self.variants}")
        at_least(1, test_sentences=self.test_sentences)


def training_share(remaining_s: float, variants_left: int, fixed_s: float | None) -> float:
    """``T_train`` of the module docstring: the next variant's training seconds when
    ``remaining_s`` are left for ``variants_left`` variants that each cost ``fixed_s``
    seconds beside their training (None: not measured yet, :data:`FIRST_FIXED_GUESS`)."""
    equal = max(remaining_s, 0.0) / variants_left
    fixed = FIRST_FIXED_GUESS * equal if fixed_s is None else fixed_s
    return max(equal - fixed, MIN_TRAIN_SHARE * equal)


@dataclass
class VariantResult:
    """The measurements of one variant; ``heatmap`` is the example sentence's attention ``(T, S)``."""

    name: str
    bleu: float
    chrf: float
    aer: float | None
    parameters: int
    steps: int
    train_seconds: float
    train_tokens_per_s: float
    decode_sentences_per_s: float
    peak_memory_mib: float
    bleu_by_length: dict[str, float]
    heatmap: list[list[float]] | None = None
    heatmap_tokens: tuple[list[str], list[str]] | None = None


def train_variant(name: str, settings: CompareSettings, train_s: float | None = None,
                  splits: CorpusSplits | None = None) -> TrainedTranslator:
    """Train one variant for ``train_s`` seconds (None: no budget) on ``splits`` (None: made
    from ``settings.corpus``); its checkpoint goes to ``out_dir/name``."""
    # the app's budget keeps EVAL_SHARE for the evaluation, already counted in the fixed cost
    budget = None if train_s is None else train_s / (1 - EVAL_SHARE)
    common = dict(out_dir=str(Path(settings.out) / name), steps=settings.steps or DEFAULT_STEPS, seed=settings.seed,
                  max_time_s=budget, log_every=50, device=settings.device,
                  progress=settings.progress, resumable=False)  # compare has no --resume
    fit = settings.steps is None and settings.max_minutes is not None  # the share sizes the schedule
    if name == "transformer":
        setup = TranslatorSetup(corpus=settings.corpus, preset=settings.transformer_preset,
                                batch_size=settings.batch_size, eval_sentences=50, seed=settings.seed)
        return train_translator(setup, paper_train_config(**common, bf16=False), fit_budget=fit, splits=splits)
    attention, guided = GUIDED_VARIANTS.get(name, (name, 0.0))
    setup = TranslatorSetup(corpus=settings.corpus, model="seq2seq", preset=settings.seq2seq_preset,
                            attention=attention, guided_alignment=guided, batch_size=settings.batch_size,
                            eval_sentences=50, seed=settings.seed)
    return train_translator(setup, rnn_train_config(**common, lr=settings.lr), fit_budget=fit, splits=splits)


def bleu_by_length(test: ParallelCorpus, hypotheses: list[str]) -> dict[str, float]:
    """BLEU of the test sentences whose source length falls in each of :data:`LENGTH_BUCKETS`."""
    scores = {}
    for low, high in LENGTH_BUCKETS:
        rows = [n for n, s in enumerate(test.src) if low <= len(s.split()) <= high]
        label = f"{low}-{high}" if high < 99 else f"{low}+"
        scores[label] = bleu([hypotheses[n] for n in rows], [test.tgt[n] for n in rows]) if rows else float("nan")
    return scores


def example_index(test: ParallelCorpus) -> int:
    """The test pair drawn in the heatmaps: the longest source sentence of the first 100."""
    return max(range(min(100, len(test))), key=lambda n: (len(test.src[n].split()), -n))


def measure_variant(name: str, settings: CompareSettings, train_s: float | None = None,
                    splits: CorpusSplits | None = None) -> VariantResult:
    """Train and measure one variant in this process (see :func:`run_variant` for isolation)."""
    settings.apply_threads()
    trained = train_variant(name, settings, train_s, splits)
    test = trained.splits.test.subset(list(range(min(settings.test_sentences, len(trained.splits.test)))))
    translator = trained.translator
    tokens = trained.result.step * settings.batch_size * _mean_target_tokens(trained.splits.train)
    scores = evaluate_translator(translator, test if name != "none" else dataclasses.replace(test, alignments=None))
    pair = test.src[example_index(test)], test.tgt[example_index(test)]
    heatmap = tokens_of = None
    if name != "none":
        attention = translator.cross_attention(*pair)
        weights = attention.weights.mean(dim=(0, 1))  # (T, S), the head average for the Transformer
        heatmap, tokens_of = weights.tolist(), (attention.src_tokens, attention.tgt_tokens)
    return VariantResult(
        name=name, bleu=scores.bleu, chrf=scores.chrf,
        aer=None if scores.alignment is None else scores.alignment.best[2],
        parameters=translator.model.num_parameters(), steps=trained.result.step,
        train_seconds=trained.result.elapsed_s, train_tokens_per_s=tokens / max(trained.result.elapsed_s, 1e-9),
        decode_sentences_per_s=len(test) / max(scores.decode_seconds, 1e-9),
        peak_memory_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        bleu_by_length=bleu_by_length(test, scores.hypotheses), heatmap=heatmap, heatmap_tokens=tokens_of,
    )


def _mean_target_tokens(corpus: ParallelCorpus) -> float:
    """Mean target words + EOS per pair (word tokenizer: one token per word)."""
    return sum(len(t.split()) + 1 for t in corpus.tgt) / max(len(corpus), 1)


def _child(name: str, settings: dict, train_s: float | None) -> None:
    splits = CorpusSplits.load(Path(settings["out"]) / CORPUS_FOLDER)
    result = measure_variant(name, config_from_dict(CompareSettings, settings), train_s, splits)
    write_json(Path(settings["out"]) / name / RESULT_FILE, dataclasses.asdict(result))


def run_variant(name: str, settings: CompareSettings, train_s: float | None = None) -> VariantResult:
    """Train (``train_s`` seconds, None: no budget) and measure ``name`` in a fresh process
    (its own peak memory) on the corpus in ``out/corpus``; Ctrl-C stops it."""
    process = multiprocessing.get_context("spawn").Process(target=_child, args=(name, config_to_dict(settings), train_s))
    process.start()
    try:
        process.join()
    except KeyboardInterrupt:
        process.join()
        raise
    if process.exitcode != 0:
        raise AttnlabError(f"compare: variant {name!r} failed (exit code {process.exitcode}); see the messages above")
    data = read_json(Path(settings.out) / name / RESULT_FILE)
    return VariantResult(**{**data, "heatmap_tokens": tuple(data["heatmap_tokens"] or ()) or None})


def compare(settings: CompareSettings, echo: Callable[[str], None] = print,
            clock: Callable[[], float] = time.monotonic) -> list[VariantResult]:
    """Make the corpus once, then train and measure every variant of ``settings``, one after
    the other, each on its share of the time left (see the module docstring)."""
    check_out(settings.out, resume=False, overwrite=settings.overwrite, wait=settings.wait)
    setup = TranslatorSetup(corpus=settings.corpus, seed=settings.seed)
    load_splits(setup, progress=settings.progress).save(Path(settings.out) / CORPUS_FOLDER)
    results, fixed, count, warned = [], None, len(settings.variants), False
    for n, name in enumerate(settings.variants, start=1):
        train_s = None
        if settings.max_time_s is not None:
            left = settings.started + settings.max_time_s - clock()
            train_s = training_share(left, count - n + 1, fixed)
            if fixed is not None and not warned and left / (count - n + 1) - fixed < train_s:
                warned = True
                echo(f"compare: each variant costs ~{fixed:.0f} s beside its training; {count - n + 1} more "
                     f"do not fit in the {max(left, 0):.0f} s left of --max-minutes: each trains "
                     f"{train_s:.0f} s and the command overruns (give more --max-minutes or fewer --variants)")
            echo(f"[{n}/{count}] {name}: {train_s:.0f} s of training")
        else:
            echo(f"[{n}/{count}] {name}")
        started = clock()
        results.append(run_variant(name, settings, train_s))
        r, took = results[-1], clock() - started
        fixed = max(fixed or 0.0, took - r.train_seconds)
        echo(f"[{n}/{count}] {name}: BLEU {r.bleu:.1f}, AER {_fmt(r.aer, '.3f')} ({took:.0f} s, "
             f"{took - r.train_seconds:.0f} s of it beside training)")
    return results


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None or value != value else format(value, spec)


def format_table(results: list[VariantResult]) -> str:
    """The comparison as a Markdown table (one row per variant)."""
    buckets = list(results[0].bleu_by_length) if results else []
    head = ["variant", "BLEU", "chrF", "AER", "params", "train tok/s", "decode sent/s", "peak MiB", "steps",
            *(f"BLEU {b}" for b in buckets)]
    rows = [[r.name, _fmt(r.bleu, ".1f"), _fmt(r.chrf, ".1f"), _fmt(r.aer, ".3f"), f"{r.parameters:,}",
             f"{r.train_tokens_per_s:,.0f}", f"{r.decode_sentences_per_s:.1f}", f"{r.peak_memory_mib:.0f}",
             str(r.steps), *(_fmt(r.bleu_by_length[b], ".1f") for b in buckets)] for r in results]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def write_report(results: list[VariantResult], settings: CompareSettings) -> Path:
    """``results.json``, ``table.md`` and ``report.html`` (bar chart + heatmaps) in ``out_dir``."""
    out = Path(settings.out)
    write_json(out / "results.json", {"settings": config_to_dict(settings),
                                      "results": [dataclasses.asdict(r) for r in results]})
    write_text(out / "table.md", format_table(results))
    build_report(results, settings).write(out / "report.html")
    return out / "report.html"


def build_report(results: list[VariantResult], settings: CompareSettings):
    """The HTML page: the table, BLEU / BLEU-by-length bar charts and the heatmaps side by side."""
    from attnlab.viz.heatmap import draw_heatmap, figure_png, plt  # matplotlib only when drawing
    from attnlab.viz.report import Report, Section

    report = Report("attnlab compare: attention variants on one task")
    table = format_table(results).splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table if not line.startswith("|---")]
    length = f"{settings.steps} steps" if settings.steps else ("as many steps as fit" if settings.max_minutes else
                                                               f"{DEFAULT_STEPS} steps")
    budget = length + (f", at most {settings.max_minutes:g} min in all" if settings.max_minutes else "")
    report.add(Section("Results", text=f"Corpus {settings.corpus!r}, budget {budget} per variant.", table=rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    names = [r.name for r in results]
    left.bar(names, [r.bleu for r in results], color="#4a7ab5")
    left.set_ylabel("BLEU")
    left.tick_params(axis="x", rotation=60)
    buckets = list(results[0].bleu_by_length)
    width = 0.8 / len(buckets)
    for k, bucket in enumerate(buckets):
        right.bar([i + k * width for i in range(len(results))], [r.bleu_by_length[bucket] for r in results],
                  width, label=f"{bucket} words")
    right.set_xticks([i + 0.4 - width / 2 for i in range(len(results))], names, rotation=60)
    right.set_ylabel("BLEU by source length")
    right.legend(fontsize=8)
    fig.tight_layout()
    report.add(Section("BLEU", images=[figure_png(fig)], captions=["BLEU overall and by source length"]))
    drawn = [r for r in results if r.heatmap is not None]
    if drawn:
        columns = min(3, len(drawn))
        fig, axes = plt.subplots(-(-len(drawn) // columns), columns, figsize=(6 * columns, 5 * -(-len(drawn) // columns)),
                                 squeeze=False)
        for ax, r in zip(axes.flat, drawn):
            src_tokens, tgt_tokens = r.heatmap_tokens
            draw_heatmap(ax, torch.tensor(r.heatmap), src_tokens, tgt_tokens, title=r.name)
        for ax in list(axes.flat)[len(drawn):]:
            ax.axis("off")
        fig.tight_layout()
        report.add(Section("Alignments", text="Teacher-forced attention on one long test sentence "
                           "(target tokens down, source tokens across; the Transformer: all heads averaged).",
                           images=[figure_png(fig, dpi=80)]))
    return report
