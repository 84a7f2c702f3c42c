"""Counted progress of the phases outside training: corpus generation and decoding a test split.

One helper (``training.progress.Heartbeat``) draws them; the generator and the decoder
report ``on_progress(done, total)`` and import nothing of ``training``. The clock is a
fake one, advanced by the test, and the total is given up front (so no elapsed-time thread
runs): the lines are deterministic.
"""

from __future__ import annotations

import io
import re

import pytest
import torch

from attnlab.apps.translate.evaluation import evaluate_translator
from attnlab.apps.translate.translator import Translator
from attnlab.config import preset
from attnlab.data.bpe import train_translation_bpe
from attnlab.data.synthetic import synthetic_corpus
from attnlab.models.transformer import TRANSFORMER_PRESETS, Transformer
from attnlab.training.progress import Heartbeat

COUNT = re.compile(r"(\d+)/(\d+)")


class Terminal(io.StringIO):
    def isatty(self):
        return True


class FakeClock:
    """Seconds that move only when ``tick`` is called (``step`` each time the phase reports)."""

    def __init__(self, step: float):
        self.now, self.step = 100.0, step

    def __call__(self) -> float:
        return self.now

    def tick(self, done: int, total: int, beat: Heartbeat) -> None:
        self.now += self.step
        beat.update(done, total)


def counts(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in COUNT.findall(text)]


def test_log_lines_every_interval_with_count_rate_and_eta():
    clock, log = FakeClock(step=1.0), io.StringIO()
    with Heartbeat("decoding 10 test sentences", total=10, stream=log, every_s=3.0, after_s=2.0, clock=clock) as beat:
        for done in range(1, 11):
            clock.tick(done, 10, beat)
    lines = log.getvalue().splitlines()
    # silent for the first 2 s, then a line every 3 s, and the last count whatever the interval
    assert [c for line in lines for c in counts(line)] == [(2, 10), (5, 10), (8, 10), (10, 10)]
    assert lines[0] == "decoding 10 test sentences ... 2/10 | 1/s | 0:00:02<0:00:08"
    assert lines[-1] == "decoding 10 test sentences ... 10/10 | 1/s | 0:00:10<0:00:00"
    assert "\r" not in log.getvalue() and "[" not in log.getvalue()


def test_a_terminal_redraws_one_line_with_a_bar_and_ends_it_once(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the line is cut to the terminal's width: make it wide enough
    clock, term = FakeClock(step=1.0), Terminal()
    with Heartbeat("generating the synthetic corpus", total=4, stream=term, after_s=0.0, clock=clock) as beat:
        for done in range(1, 5):
            clock.tick(done, 4, beat)
    text = term.getvalue()
    assert text.count("\r") == 5 and text.count("\n") == 1 and text.endswith("\n")  # 4 redraws + the final one
    assert counts(text) == [(1, 4), (2, 4), (3, 4), (4, 4), (4, 4)]
    assert "[######..................]  25%" in text
    assert text.rstrip().endswith("4/4 [########################] 100% | 1/s | done in 0:00:04")


def test_a_short_or_disabled_phase_prints_nothing():
    for enabled, after_s in ((True, 60.0), (False, 0.0)):
        clock, term = FakeClock(step=1.0), Terminal()
        with Heartbeat("short", total=4, stream=term, after_s=after_s, enabled=enabled, clock=clock) as beat:
            for done in range(1, 5):
                clock.tick(done, 4, beat)
        assert term.getvalue() == ""


def test_corpus_generation_reports_distinct_pairs_up_to_the_total():
    reported = []
    splits = synthetic_corpus("tiny", seed=1, on_progress=lambda done, total: reported.append((done, total)))
    total = len(splits.train) + len(splits.valid) + len(splits.test)
    assert reported[-1] == (total, total) and {t for _, t in reported} == {total}
    assert [d for d, _ in reported] == sorted(set(d for d, _ in reported)) and len(reported) > 2
    # reporting changes nothing of the corpus
    assert synthetic_corpus("tiny", seed=1).train.src == splits.train.src


def test_corpus_generation_through_the_helper_logs_counted_lines():
    clock, log = FakeClock(step=0.5), io.StringIO()
    tiny = 2000 + 200 + 200  # given up front (no elapsed-time thread), and confirmed by every call
    with Heartbeat("generating the synthetic corpus", total=tiny, stream=log, every_s=1.0, after_s=0.0,
                   clock=clock) as beat:
        splits = synthetic_corpus("tiny", seed=1, on_progress=lambda d, t: clock.tick(d, t, beat))
    total = len(splits.train) + len(splits.valid) + len(splits.test)
    seen = [c for line in log.getvalue().splitlines() for c in counts(line)]
    assert len(seen) >= 2 and seen[-1] == (total, total) and all(t == total for _, t in seen)


@pytest.fixture()
def tiny_translator():
    torch.manual_seed(0)
    corpus = synthetic_corpus("tiny", seed=2).train
    tok = train_translation_bpe(corpus.src[:200] + corpus.tgt[:200], 300)
    config = preset(TRANSFORMER_PRESETS, "tiny", src_vocab_size=tok.vocab_size, tgt_vocab_size=tok.vocab_size,
                    pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id, max_len=64)
    return Translator(Transformer(config).eval(), tok, tok)


def test_decoding_reports_sentences_after_every_batch(tiny_translator):
    test = synthetic_corpus("tiny", seed=2).test
    corpus = type(test)(test.src[:10], test.tgt[:10], test.alignments[:10])
    reported = []
    scores = evaluate_translator(tiny_translator, corpus, batch_size=4,
                                 on_progress=lambda done, total: reported.append((done, total)))
    assert reported == [(4, 10), (8, 10), (10, 10)]
    assert scores.hypotheses == tiny_translator.translate(corpus.src, batch_size=4)  # the count changes nothing
