"""Train a GPT on text, generate from it, and see its attention.

    from attnlab.apps import lm
    trained = lm.train(lm.LMSettings(out="runs/lm", max_minutes=5, bf16=True))
    model, tokenizer = lm.load("runs/lm")
    text = lm.complete(model, tokenizer, "def fib(n):", 200, on_text=print)
    explained = lm.attentions(lm.load("runs/lm"), ["def fib(n):"])

Below ``train`` (settings in, the run out) sit the parts a script can use alone:
``prepare_lm_data(LMSetup())`` (stdlib source, char tokenizer) and
``train_lm(LMSetup(), TrainConfig(out_dir="runs/lm", steps=2000))``.

The checkpoint folder is a HuggingFace GPT-2 folder (``config.json``, ``model.safetensors``)
plus the attnlab tokenizer files, written by the shared Trainer (atomic, resumable).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from attnlab.apps.common import (
    TrainSettings,
    at_least,
    at_most,
    budgeted,
    check_ckpt,
    check_out,
    train_config,
)
from attnlab.attention.maps import Explained
from attnlab.data.char_tokenizer import CharTokenizer
from attnlab.data.lm_batches import LMBatches
from attnlab.data.stdlib_corpus import TextCorpus, load_corpus
from attnlab.data.tokenizer import ByteLevelBPETokenizer, Tokenizer
from attnlab.errors import AttnlabError
from attnlab.evaluation.lm import count_windows, evaluate_lm
from attnlab.interop.hf_gpt2 import tokenizer_from_hf_folder
from attnlab.io import write_json
from attnlab.models.gpt import GPT, gpt_config
from attnlab.training import (
    TrainConfig,
    Trainer,
    TrainResult,
    distributed,
    find_checkpoint,
    set_seed,
)
from attnlab.training.progress import Heartbeat

TOKENIZERS = ("char", "bpe")
BPE_SAMPLE_CHARS = 5_000_000  # BPE merges are learned on this much training text
DEFAULT_NEW_TOKENS = 200
MAX_NEW_TOKENS = 100_000  # a bound checked before any work: a typo cannot run for hours
DEFAULT_STEPS = 2000
FINAL_EVAL_FILE = "final_eval.json"  # written into the run folder after training
FINAL_EVALS = ("full", "quick", "none")


@dataclass
class LMSettings(TrainSettings):
    """A language-model run. ``final_eval``: after training, ``"full"`` evaluates every
    window of the validation text (minutes on a large corpus), ``"quick"`` the same
    ``eval_windows`` windows as during training, ``"none"`` nothing; None: full, or quick
    when ``max_minutes`` bounds the run (the budget bounds the final evaluation too)."""

    data: str | None = None
    tokenizer: str = "char"
    vocab_size: int = 4096
    preset: str = "char-small"
    context: int | None = None
    eval_every: int = 250
    max_chars: int | None = None
    final_eval: str | None = None
    out: str = "runs/lm"
    batch_size: int = 16
    lr: float = 6e-3
    warmup: int = 50
    weight_decay: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.final_eval is not None and self.final_eval not in FINAL_EVALS:
            raise AttnlabError(f"--final-eval: expected one of {list(FINAL_EVALS)}, got {self.final_eval!r}")
        at_least(2, context=self.context)
        at_least(0, eval_every=self.eval_every)


class LoadedLM(NamedTuple):
    model: GPT
    tokenizer: Tokenizer


@dataclass
class LMSetup:
    """Data, tokenizer and model shape of a language-model run."""

    data: str | None = None  # a text file or folder; None: the Python standard library
    tokenizer: str = "char"
    vocab_size: int = 4096  # byte-level BPE only
    preset: str = "char-small"
    context: int | None = None  # training window; None: the preset's context_length
    batch_size: int = 16
    val_fraction: float = 0.05
    max_chars: int | None = None  # cap each split (quick runs)
    eval_windows: int = 64  # windows (spread over the validation text) of the evaluations during training
    final_eval: str = "full"  # after training: every window ("full"), eval_windows ("quick") or "none"
    seed: int = 0
    dropout: float | None = None  # None: the preset's

    def __post_init__(self) -> None:
        if self.final_eval not in FINAL_EVALS:
            raise AttnlabError(f"final_eval: expected one of {list(FINAL_EVALS)}, got {self.final_eval!r}")
        if self.tokenizer not in TOKENIZERS:
            raise AttnlabError(f"tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")


@dataclass
class LMData:
    corpus: TextCorpus
    tokenizer: Tokenizer
    train_ids: torch.Tensor
    val_ids: torch.Tensor

    @property
    def chars_per_token(self) -> float:
        return len(self.corpus.validation) / max(len(self.val_ids), 1)


@dataclass
class TrainedLM:
    model: GPT
    tokenizer: Tokenizer
    result: TrainResult
    data: LMData
    final_metrics: dict[str, float] | None = None  # :func:`final_evaluation`, after training
    eval_windows: int = 64  # windows of the last evaluation when there is no full final one


def _encode(tokenizer: Tokenizer, text: str) -> torch.Tensor:
    if isinstance(tokenizer, CharTokenizer):
        return torch.from_numpy(tokenizer.encode_array(text))
    lines = text.splitlines(keepends=True)  # the backend encodes a batch in parallel
    return torch.tensor([i for ids in tokenizer.encode_batch(lines) for i in ids], dtype=torch.long)


def prepare_lm_data(setup: LMSetup, tokenizer: Tokenizer | None = None) -> LMData:
    """Read the corpus, train (or reuse) the tokenizer and encode both splits."""
    corpus = load_corpus(setup.data, setup.val_fraction, setup.max_chars)
    if tokenizer is None and setup.tokenizer == "char":
        tokenizer = CharTokenizer.train([corpus.train])
    elif tokenizer is None:
        tokenizer = distributed.from_rank0(  # the same vocabulary on every rank (training it is not deterministic)
            lambda: ByteLevelBPETokenizer.train([corpus.train[:BPE_SAMPLE_CHARS]], setup.vocab_size))
    return LMData(corpus, tokenizer, _encode(tokenizer, corpus.train), _encode(tokenizer, corpus.validation))


def train_lm(setup: LMSetup, config: TrainConfig, resume: bool = False, fit_budget: bool = False,
             started: float | None = None) -> TrainedLM:
    """Train a GPT of ``setup.preset`` shape on ``setup.data`` with the shared Trainer.

    ``fit_budget`` (no ``--steps``): ``config.steps`` is decided by the time budget
    ``config.max_time_s``, counted from ``started``, as every app does
    (:func:`attnlab.apps.common.budgeted`); a resumed run keeps the schedule length its
    checkpoint recorded, so it continues with the same learning rates.
    """
    previous = find_checkpoint(config.out_dir) if resume else None
    tokenizer = Tokenizer.load(previous) if previous is not None else None
    data = prepare_lm_data(setup, tokenizer)
    base = gpt_config(setup.preset)
    context = setup.context or base.context_length
    if context > base.context_length:
        raise AttnlabError(f"context ({context}) exceeds the {setup.preset!r} preset's context_length ({base.context_length})")
    if setup.dropout is not None:
        base = dataclasses.replace(base, dropout=setup.dropout, attention_dropout=setup.dropout)
    set_seed(config.seed)  # the initial weights are part of the run
    model = GPT(dataclasses.replace(base, vocab_size=data.tokenizer.vocab_size, eos_token_id=data.tokenizer.eos_id))
    batches = LMBatches(data.train_ids, setup.batch_size, context, setup.seed)
    config = budgeted(config, model, batches, fit=fit_budget, resume=resume, started=started)
    trainer = Trainer(
        model, batches, config,
        evaluate=lambda m: evaluate_lm(
            m, data.val_ids, context, max_windows=setup.eval_windows, chars_per_token=data.chars_per_token
        ),
        count_tokens=lambda batch: batch["input_ids"].numel(),
        save_extra=data.tokenizer.save,
    )
    result = trainer.fit(resume=resume)
    final = None
    if not result.interrupted and setup.final_eval == "full":
        final = final_evaluation(trainer.model, data, context, progress=config.progress)
        write_json(Path(config.out_dir) / FINAL_EVAL_FILE, final)
    return TrainedLM(trainer.model, data.tokenizer, result, data, final, setup.eval_windows)


def final_evaluation(model: GPT, data: LMData, context: int, progress: bool = False) -> dict[str, float]:
    """Every window of the validation text, twice: consecutive windows (``bits_per_char``...)
    and sliding windows of stride ``context // 2`` (``sliding_bits_per_char``...: every
    character predicted with at least ``context // 2`` tokens before it)."""
    if progress:
        print(f"evaluating on all {len(data.val_ids):,} validation tokens (consecutive and sliding windows) ...")
    model.eval()
    stride = max(1, context // 2)
    first = count_windows(len(data.val_ids), context)  # windows of the consecutive pass, then the sliding one's
    total = first + count_windows(len(data.val_ids), context, stride=stride)
    with Heartbeat("scoring the validation windows", enabled=progress) as beat:
        whole = evaluate_lm(model, data.val_ids, context, max_windows=None, chars_per_token=data.chars_per_token,
                            on_progress=lambda done, _: beat.update(done, total))
        sliding = evaluate_lm(model, data.val_ids, context, max_windows=None, chars_per_token=data.chars_per_token,
                              stride=stride, on_progress=lambda done, _: beat.update(first + done, total))
    return {**whole, **{f"sliding_{k}": v for k, v in sliding.items()}, "sliding_stride": stride}


def train(settings: LMSettings) -> TrainedLM:
    """Train a GPT as ``settings`` say (the run folder is ``settings.out``)."""
    check_out(settings.out, resume=settings.resume, overwrite=settings.overwrite, wait=settings.wait, kinds=("gpt2",))
    settings.apply_threads()
    final_eval = settings.final_eval or ("quick" if settings.max_minutes is not None else "full")
    setup = LMSetup(
        data=settings.data, tokenizer=settings.tokenizer, vocab_size=settings.vocab_size, preset=settings.preset,
        context=settings.context, batch_size=settings.batch_size, max_chars=settings.max_chars, seed=settings.seed,
        final_eval=final_eval, dropout=settings.dropout,
    )
    steps = settings.steps or DEFAULT_STEPS
    config = train_config(settings, steps=steps, eval_every=settings.eval_every, betas=(0.9, 0.99),
                          warmup_steps=settings.warmup)
    return train_lm(setup, config, resume=settings.resume, fit_budget=settings.steps is None, started=settings.started)


def load(directory: str | Path, device: str = "cpu") -> LoadedLM:
    """A trained GPT and its tokenizer (an attnlab run folder or a HuggingFace GPT-2 folder)."""
    check_ckpt(directory)
    model = GPT.from_pretrained(directory, map_location=device).eval()
    tokenizer = tokenizer_from_hf_folder(directory)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise AttnlabError(f"{directory}: tokenizer has {tokenizer.vocab_size} tokens, the model {model.config.vocab_size}")
    return LoadedLM(model, tokenizer)


@torch.no_grad()
def attentions(loaded: LoadedLM, inputs: list[str]) -> Explained:
    """Every layer's causal self-attention on each prompt of ``inputs`` (default: one example)."""
    model, tokenizer = loaded
    limit = model.config.context_length
    # the user's text is refused, not cropped (the map would silently show less than was given);
    # the built-in example is cropped to a small model's context
    rows = [tokenizer.encode(t) for t in inputs] if inputs else [tokenizer.encode(DEFAULT_PROMPT)[:limit]]
    for n, row in enumerate(rows):
        if len(row) > limit:
            raise AttnlabError(f"input {n + 1} has {len(row)} tokens; this model reads at most context_length={limit}")
    if not all(rows):
        raise AttnlabError("inputs: expected some text, got an empty prompt")
    width = max(map(len, rows))
    pad = tokenizer.eos_id if tokenizer.eos_id is not None and tokenizer.eos_id < model.config.vocab_size else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for n, row in enumerate(rows):  # right padding: positions count from the first token
        ids[n, : len(row)], mask[n, : len(row)] = torch.tensor(row), 1
    device = next(model.parameters()).device
    model.eval()
    out = model(ids.to(device), attention_mask=None if len(rows) == 1 else mask.to(device), need_weights=True)
    tokens = [[tokenizer.decode([i]) for i in row] for row in rows]
    special = {tokenizer.decode([tokenizer.eos_id])} if tokenizer.eos_id is not None else set()
    return Explained("gpt2", out.attentions, {"tokens": tokens}, {"special": special, "lengths": list(map(len, rows))})


DEFAULT_PROMPT = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"


class TextStream:
    """Decode growing token lists and hand out only the new text (for streaming)."""

    def __init__(self, tokenizer: Tokenizer, write: Callable[[str], None]):
        self.tokenizer, self.write = tokenizer, write
        self.ids: list[int] = []
        self.shown = ""

    def __call__(self, tokens: torch.Tensor) -> None:
        self.ids.append(int(tokens[0]))
        text = self.tokenizer.decode(self.ids)
        if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
            self.write(text[len(self.shown):])
            self.shown = text


def complete(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    max_new_tokens: int | None = None,
    *,
    on_text: Callable[[str], None] | None = None,
    echo: bool = False,
    **sampling,
) -> str:
    """The continuation of ``prompt`` (text), streamed to ``on_text`` piece by piece
    (``echo``: the prompt first, once the request is checked).

    ``max_new_tokens=None`` means 200, or fewer if the context would overflow; at most
    :data:`MAX_NEW_TOKENS`.
    """
    at_least(1, max_new_tokens=max_new_tokens)
    at_most(MAX_NEW_TOKENS, max_new_tokens=max_new_tokens)
    ids = tokenizer.encode(prompt)
    if not ids:
        raise AttnlabError("prompt: expected some text, got an empty prompt")
    if echo and on_text is not None:
        on_text(prompt)
    if max_new_tokens is None:
        max_new_tokens = max(min(DEFAULT_NEW_TOKENS, model.config.context_length - len(ids)), 0)
    device = next(model.parameters()).device
    stream = TextStream(tokenizer, on_text or (lambda _: None))
    eos = tokenizer.eos_id if tokenizer.eos_id is not None and tokenizer.eos_id < model.config.vocab_size else None
    model.generate(
        torch.tensor([ids], device=device), max_new_tokens, eos_token_id=eos, on_tokens=stream, **sampling
    )
    return tokenizer.decode(stream.ids)


def generator(device: str, seed: int) -> torch.Generator:
    """The random numbers of sampling on ``device``, from ``seed`` (same seed, same text)."""
    return torch.Generator(device=device).manual_seed(seed)


def print_stream(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
