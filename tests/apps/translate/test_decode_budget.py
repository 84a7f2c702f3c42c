"""The final test decoding inside ``--max-minutes``: beam, greedy, or a greedy prefix of the
test split, decided from rates measured on an injected clock (no wall time)."""

from __future__ import annotations

import pytest

from attnlab.apps.translate import app
from attnlab.apps.translate.decode_budget import DecodePlan, evaluation_seconds, fitted_decoding
from attnlab.apps.translate.training import TrainedTranslator, TranslatorSetup, build_translator
from attnlab.data import synthetic_corpus
from attnlab.training import TrainResult


class Clock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class TimedTranslator:
    """Decoding advances ``clock`` by ``seconds[beam]`` per sentence."""

    def __init__(self, clock: Clock, seconds: dict[int, float]):
        self.clock, self.seconds, self.calls = clock, seconds, []

    def translate(self, sentences, beam_size=4, **_):
        self.calls.append((len(sentences), beam_size))
        self.clock.now += self.seconds[beam_size] * len(sentences)
        return ["x"] * len(sentences)


SOURCES = [f"sentence {n}" for n in range(1000)]


def plan(seconds, *, now, budget=180.0, beam=4, sources=SOURCES):
    clock = Clock(now)
    translator = TimedTranslator(clock, seconds)
    return fitted_decoding(translator, sources, beam, started=0.0, max_time_s=budget, clock=clock), translator


def test_no_budget_or_a_small_split_decodes_everything_at_the_beam_without_probing():
    clock = Clock()
    translator = TimedTranslator(clock, {4: 1.0, 1: 1.0})
    assert fitted_decoding(translator, SOURCES, 4, started=0.0, max_time_s=None, clock=clock) == DecodePlan(4, 1000)
    assert fitted_decoding(translator, SOURCES[:32], 4, started=0.0, max_time_s=1.0, clock=clock) == DecodePlan(4, 32)
    assert translator.calls == []


def test_the_beam_when_it_fits():
    # 100 s left; the beam probe (32 x 0.05 s = 1.6 s) leaves 98.4 s >= 1000 x 0.05 s
    assert plan({4: 0.05, 1: 0.01}, now=80.0)[0] == DecodePlan(4, 1000)


def test_greedy_for_all_when_the_beam_does_not_fit_but_greedy_does(capsys):
    # beam: 1000 x 0.2 s = 200 s > 100 - 6.4 s left; greedy: 1000 x 0.05 = 50 s <= 100 - 6.4 - 1.6 s
    decided, translator = plan({4: 0.2, 1: 0.05}, now=80.0)
    assert decided == DecodePlan(1, 1000) and translator.calls == [(32, 4), (32, 1)]
    assert "decoded greedily" in capsys.readouterr().err


def test_a_greedy_prefix_that_fits_when_even_greedy_would_overrun():
    """The case of ``train translate --max-minutes 3``: ~60 s of greedy decoding with ~30 s
    left. 0.06 s a sentence greedy; 30 s left after the greedy probe (32 x 0.06 = 1.92 s)."""
    decided, translator = plan({1: 0.06}, now=180.0 - 31.92, beam=1)
    assert translator.calls == [(32, 1)]
    assert decided == DecodePlan(1, 500)  # floor(30 / 0.06)
    # the beam's probe is spent too: 0.24 s x 32 = 7.68 s, then greedy's 1.92 s, from 39.6 s left
    assert plan({4: 0.24, 1: 0.06}, now=180.0 - 39.6)[0] == DecodePlan(1, 500)


def test_a_spent_budget_still_decodes_one_probe_worth():
    assert plan({4: 1.0, 1: 0.5}, now=500.0)[0] == DecodePlan(1, 32)


@pytest.fixture(scope="module")
def trained():
    splits = synthetic_corpus("tiny", seed=0)
    translator = build_translator(TranslatorSetup(corpus="tiny", preset="tiny"), splits)
    return TrainedTranslator(translator, TrainResult(step=3, losses=[], metrics={}, elapsed_s=1.0), splits)


def test_the_decoded_rows_spread_over_the_split():
    """Not a prefix: the split is ordered by program, so N rows evenly spaced over it."""
    assert DecodePlan(1, 4).rows(10) == [0, 2, 5, 7]
    assert DecodePlan(1, 3).rows(3) == DecodePlan(4, 5).rows(3) == [0, 1, 2]
    rows = DecodePlan(1, 500).rows(4079)
    assert len(set(rows)) == 500 and rows[0] == 0 and rows[-1] >= 4079 - 4079 // 500 - 1


def test_train_scores_the_spread_rows_and_says_so_in_one_line(trained, monkeypatch, capsys, tmp_path):
    total = len(trained.splits.test)
    monkeypatch.setattr(app, "train_translator", lambda *a, **k: trained)
    monkeypatch.setattr(app, "fitted_decoding", lambda *a, **k: DecodePlan(1, 7))
    decoded = []
    evaluate = app.evaluate_translator
    monkeypatch.setattr(app, "evaluate_translator", lambda tr, test, **k: decoded.append(list(test.src)) or evaluate(tr, test, **k))
    run = app.train(app.TranslateSettings(corpus="tiny", preset="tiny", max_minutes=3, overwrite=True,
                                          out=str(tmp_path / "run"), progress=False))
    assert len(run.scores.hypotheses) == 7
    assert decoded == [[trained.splits.test.src[i] for i in DecodePlan(1, 7).rows(total)]] and total > 14
    assert f"test: decoded 7 of {total} sentences within the budget\n" in capsys.readouterr().err
    assert f"test: {run.scores.summary()}".startswith("test: BLEU ")



def test_evaluation_seconds_at_the_beam_when_it_fits_what_was_held():
    clock = Clock()
    translator = TimedTranslator(clock, {4: 0.05, 1: 0.01})
    # 1.25 x 1000 x 0.05 s + the probe's 32 x 0.05 s = 64.1 s <= 100 s held: the beam's time, one probe
    assert evaluation_seconds(translator, SOURCES, 4, held_s=100.0, clock=clock) == pytest.approx(64.1)
    assert translator.calls == [(32, 4)]


def test_evaluation_seconds_greedy_when_the_beam_does_not_fit():
    clock = Clock()
    translator = TimedTranslator(clock, {4: 0.2, 1: 0.01})
    # beam 1.25 x 1000 x 0.2 = 250 s > 100 s held: greedy 1.25 x 1000 x 0.01 = 12.5 s, plus
    # both probes (32 x 0.2 + 32 x 0.01 s)
    assert evaluation_seconds(translator, SOURCES, 4, held_s=100.0, clock=clock) == pytest.approx(12.5 + 6.72)
    assert translator.calls == [(32, 4), (32, 1)]
