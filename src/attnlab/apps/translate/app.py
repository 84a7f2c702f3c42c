"""The translate app's settings-in, run-out layer: what ``attnlab train translate|seq2seq``,
``attnlab translate`` and the pictures of a translator call.

    from attnlab.apps import translate
    run = translate.train(translate.TranslateSettings(out="runs/tr", steps=500))
    print(run.scores.summary())
    translator = translate.load("runs/tr")
    explained = translate.attentions(translator, ["the small cat sees a dog ."])

``model="seq2seq"`` trains the RNN encoder-decoder with ``attention`` (any of
:data:`~attnlab.models.seq2seq_attention.ATTENTION_NAMES`) instead of the Transformer.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch

from attnlab.apps.common import (
    TrainSettings,
    at_least,
    at_most,
    check_ckpt,
    check_out,
    train_config,
)
from attnlab.apps.translate.catalog import FillReport, fill_catalog
from attnlab.apps.translate.decode_budget import fitted_decoding
from attnlab.apps.translate.evaluation import TranslationScores, evaluate_translator
from attnlab.apps.translate.training import (
    SETUP_FILE,
    TrainedTranslator,
    TranslatorSetup,
    paper_train_config,
    rnn_train_config,
    train_translator,
)
from attnlab.apps.translate.translator import Translator
from attnlab.attention.maps import Explained
from attnlab.data.bpe import display_tokens
from attnlab.data.gettext_corpus import is_gettext_spec, parse_spec
from attnlab.data.placeholders_repair import repair_placeholders
from attnlab.errors import AttnlabError
from attnlab.evaluation.real_language import RealLanguageScores, score_translations
from attnlab.io import read_json
from attnlab.training.progress import Heartbeat

RECIPE = {"max_tokens": 1024, "token_dropout": 0.0, "average_last": 1, "bf16": True, "lr": 3e-3}  # docs/real_language.md
EXAMPLE_SOURCES = [
    "the small cat sees a dog .",
    "two big dogs will chase the cat that sleeps in the house .",
]


@dataclass
class TranslateSettings(TrainSettings):
    """A translation run: the data (synthetic corpus ``corpus``, or files), the model and
    its tokenizers. RNN only: ``attention``, ``style``, ``cell``, ``input_feeding``."""

    model: str = "transformer"
    data: str | None = None  # or "gettext:LANG" (+ catalogs): English -> LANG from the gettext catalogs
    tgt_data: str | None = None
    catalogs: list[str] | None = None
    corpus: str = "default"
    preset: str | None = None  # None: "small" (Transformer), "compact" (RNN)
    tokenizer: str | None = None  # None: "byte_bpe" for gettext data, else "word"
    vocab_size: int = 8000
    eval_every: int = 0
    align: str | None = None
    guided_alignment: float = 0.0
    attention: str = "bahdanau"
    style: str = "luong"
    cell: str = "gru"
    input_feeding: bool = True
    out: str = "runs/translate"
    batch_size: int = 64
    warmup: int = 200
    beam: int = 4  # the final evaluation's beam (1: greedy), GNMT length normalisation alpha 0.6
    shared_vocab: bool | None = None  # None: the recipe's (gettext data, Transformer: one joint vocabulary)
    copy_attention: bool = False  # pointer-generator over the joint vocabulary (models/copy_attention.py)
    max_tokens: int | None = None  # None: the recipe's for gettext data; 0: batches of batch_size pairs
    token_dropout: float | None = None  # None: the recipe's
    average_last: int | None = None  # None: the recipe's
    fp32: bool = False  # the recipe trains gettext data under bf16 autocast; this keeps fp32
    lr: float | None = None  # None: the recipe's for gettext data, else 1e-3

    def __post_init__(self) -> None:
        if self.lr is None:
            self.lr = RECIPE["lr"] if self.follows_recipe else 1e-3
        super().__post_init__()

    @property
    def follows_recipe(self) -> bool:
        """The small-data recipe applies: a Transformer on ``gettext:`` data."""
        return is_gettext_spec(self.data) and self.model == "transformer"

    def recipe(self) -> dict:
        """The small-data recipe for ``gettext:`` data (docs/real_language.md: each choice with
        its valid-split measurement); the synthetic corpus and user files keep the plain setup."""
        gettext = self.follows_recipe
        return {
            "shared_vocab": gettext if self.shared_vocab is None else self.shared_vocab,
            "max_tokens": (RECIPE["max_tokens"] if gettext else None) if self.max_tokens is None else (self.max_tokens or None),
            "token_dropout": (RECIPE["token_dropout"] if gettext else 0.0) if self.token_dropout is None else self.token_dropout,
            "average_last": (RECIPE["average_last"] if gettext else 1) if self.average_last is None else self.average_last,
        }

    @property
    def uses_bf16(self) -> bool:
        """``--bf16``, or the recipe's bf16 autocast for gettext data (``--fp32``: off)."""
        recipe = self.follows_recipe and RECIPE["bf16"]
        return self.bf16 or (recipe and not self.fp32)

    def setup(self) -> TranslatorSetup:
        rnn = self.model == "seq2seq"
        overrides = {"attention_style": self.style, "cell": self.cell, "input_feeding": self.input_feeding} if rnn else {}
        if self.dropout is not None:
            overrides["dropout"] = self.dropout
        recipe = self.recipe()
        return TranslatorSetup(
            model=self.model, data=self.data, tgt_data=self.tgt_data, catalogs=list(self.catalogs or []),
            corpus=self.corpus, tokenizer=self.tokenizer or ("byte_bpe" if is_gettext_spec(self.data) else "word"),
            vocab_size=self.vocab_size, preset=self.preset or ("compact" if rnn else "small"),
            attention=self.attention, batch_size=None if recipe["max_tokens"] else self.batch_size,
            model_overrides=overrides, align_data=self.align, guided_alignment=self.guided_alignment, seed=self.seed,
            copy_attention=self.copy_attention, **recipe,
        )


@dataclass
class TranslationRun:
    trained: TrainedTranslator
    scores: TranslationScores | None  # None after Ctrl-C
    real_scores: RealLanguageScores | None = None  # gettext data: BLEU (the language's tokenizer), exact, placeholders

    @property
    def translator(self) -> Translator:
        return self.trained.translator

    def undertrained_note(self) -> str | None:
        """A warning line when most test translations came out empty (see :func:`undertrained_note`)."""
        if self.scores is None:
            return None
        empty = sum(not h.strip() for h in self.scores.hypotheses)
        return undertrained_note(empty, len(self.scores.hypotheses), self.trained.result.step)


def undertrained_note(empty: int, total: int, steps: int | None) -> str | None:
    """``empty`` of ``total`` translations of non-empty sentences are empty: for most of them,
    a model that has not yet learned to emit words (it predicts end-of-sentence first); the
    line says so and how many updates it had."""
    if total == 0 or empty * 2 <= total:
        return None
    trained = f"after {steps:,} updates" if steps is not None else "so far"
    return (f"note: {empty} of {total} translations are empty: the model is undertrained {trained}; "
            "train longer (--steps, --max-minutes) or --resume it")


def checkpoint_steps(ckpt: str | Path) -> int | None:
    """The updates the checkpoint in ``ckpt`` was trained for (None: not recorded)."""
    state = Path(ckpt) / "trainer_state.json"
    step = read_json(state).get("step") if state.is_file() else None
    return step if isinstance(step, int) else None


def fit(settings: TranslateSettings, test_beam: int | None = None) -> TrainedTranslator:
    """Train (or resume) a translator, no test decoding (:func:`train` adds it, at
    ``test_beam``: the budget keeps what that decoding measures it needs)."""
    setup = settings.setup()  # validated before anything is written
    check_out(settings.out, resume=settings.resume, overwrite=settings.overwrite, wait=settings.wait, kinds=("transformer", "seq2seq"))
    settings.apply_threads()
    steps = settings.steps or (2000 if settings.model == "transformer" else 1000)
    make = paper_train_config if settings.model == "transformer" else rnn_train_config
    base = make()
    config = train_config(settings, steps=steps, eval_every=settings.eval_every, betas=base.betas, eps=base.eps,
                          bf16=settings.uses_bf16,
                          weight_decay=base.weight_decay, warmup_steps=settings.warmup if settings.model == "transformer"
                          else min(settings.warmup, 100))
    return train_translator(setup, config, resume=settings.resume,
                            fit_budget=settings.steps is None, started=settings.started, test_beam=test_beam)


def train(settings: TranslateSettings) -> TranslationRun:
    """Train (or resume) a translator and score it on the test split."""
    trained = fit(settings, test_beam=settings.beam)
    if trained.result.interrupted:
        return TranslationRun(trained, None)
    test = trained.splits.test
    if settings.attention == "none" and settings.model == "seq2seq" and test.alignments is not None:
        test = dataclasses.replace(test, alignments=None)  # no attention: nothing to align
    plan = fitted_decoding(trained.translator, test.src, settings.beam, started=settings.started,
                           max_time_s=settings.max_time_s)
    if plan.sentences < len(test):
        print(f"test: decoded {plan.sentences} of {len(test)} sentences within the budget", file=sys.stderr)
        test = test.subset(plan.rows(len(test)))
    with Heartbeat(f"decoding {len(test)} test sentences", enabled=settings.progress) as beat:
        scores = evaluate_translator(trained.translator, test, on_progress=beat.update, beam_size=plan.beam)
    real = None
    if is_gettext_spec(settings.data):
        real = score_translations(test.src, scores.hypotheses, test.tgt, parse_spec(settings.data).language)
    return TranslationRun(trained, scores, real)


MAX_BEAM, MAX_BATCH = 64, 4096  # search sizes: larger ones only run out of time or memory


def check_search(beam: int, batch_size: int) -> None:
    """``--beam`` and ``--batch-size`` bounded before any work, the limit in the message
    (``--beam 100000`` would otherwise decode for many minutes before failing)."""
    at_least(1, beam=beam, batch_size=batch_size)
    at_most(MAX_BEAM, beam=beam)
    at_most(MAX_BATCH, batch_size=batch_size)


def load(ckpt: str | Path, device: str = "cpu") -> Translator:
    return Translator.load(check_ckpt(ckpt), device=device)


def checkpoint_language(ckpt: str | Path) -> str | None:
    """The target language a translator folder was trained for (``gettext:fr`` -> ``fr``), if known."""
    setup = Path(ckpt) / SETUP_FILE
    data = read_json(setup).get("data") if setup.is_file() else None
    return parse_spec(data).language if is_gettext_spec(data) else None


def translate_checked(translator, sentences: list[str], *, beam_size: int = 4, alpha: float = 0.6,
                      batch_size: int = 64) -> list[str | None]:
    """``translator.translate`` (a :class:`Translator` or an ONNX one), each output verified to
    keep its source's placeholders and tags (:func:`~attnlab.data.placeholders_repair.repair_placeholders`:
    repaired where that is certain, else ``None``: refused), never one that silently lost one."""
    hypotheses = translator.translate(sentences, beam_size=beam_size, alpha=alpha, batch_size=batch_size)
    return [repair_placeholders(s, h) for s, h in zip(sentences, hypotheses)]


def line_batches(stream: IO[str], size: int) -> Iterator[list[str]]:
    """The lines of ``stream`` (newline removed) in lists of ``size``; one by one when it is a
    terminal, so a person typing sees each translation at once."""
    interactive = stream.isatty()
    batch: list[str] = []
    for line in stream:
        batch.append(line.rstrip("\r\n"))
        if interactive or len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def fill_po(translator: Translator, po: str | Path, out: str | Path, *, language: str | None = None,
            beam_size: int = 4, alpha: float = 0.6, batch_size: int = 64) -> FillReport:
    """Fill the untranslated entries of the catalog ``po`` into ``out``
    (:func:`attnlab.apps.translate.catalog.fill_catalog`), placeholders verified."""
    def translate(texts):
        return translate_checked(translator, list(texts), beam_size=beam_size, alpha=alpha, batch_size=batch_size)

    return fill_catalog(po, out, translate, language=language)


@torch.no_grad()
def attentions(translator: Translator, inputs: list[str], targets: list[str] | None = None) -> Explained:
    """Every attention map of the translator on ``inputs`` (default: two examples), the
    decoder fed its own greedy translation (or ``targets``, teacher-forced)."""
    sources = [" ".join(s.split()) for s in (inputs or EXAMPLE_SOURCES)]
    if not all(sources):
        raise AttnlabError("inputs: expected sentences, got an empty one")
    targets = targets if targets is not None else translator.translate(sources)
    if len(targets) != len(sources):
        raise AttnlabError(f"targets: expected {len(sources)} sentences, got {len(targets)}")
    model, tgt_tok = translator.model, translator.tgt_tokenizer
    c = model.config
    src = translator.encode_sources(sources)  # (B, S)
    rows = [[c.bos_id, *tgt_tok.encode(t)][: c.max_len] for t in targets]
    tgt_in = torch.full((len(rows), max(map(len, rows))), c.pad_id, dtype=torch.long)
    for n, row in enumerate(rows):
        tgt_in[n, : len(row)] = torch.tensor(row)
    model.eval()
    out = model(src, tgt_in.to(src.device), need_weights=True)
    src_tokens = [display_tokens(translator.src_tokenizer, s) for s in sources]
    # the query at position t predicts target token t (after <bos> and t - 1 tokens)
    tgt_tokens = [display_tokens(tgt_tok, t) + ["</s>"] for t in targets]
    labels = {"source": _pad_labels(src_tokens, src.shape[1]), "target": _pad_labels(tgt_tokens, tgt_in.shape[1])}
    return Explained(model.model_type, out.attentions, labels,
                     {"predictions": targets, "sources": sources, "special": {"</s>", "<pad>"},
                      "src_lengths": list(map(len, src_tokens)), "tgt_lengths": list(map(len, tgt_tokens))})


def _pad_labels(rows: list[list[str]], width: int) -> list[list[str]]:
    return [(row + ["<pad>"] * width)[:width] for row in rows]
