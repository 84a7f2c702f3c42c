"""Counted progress where the apps call it: ``attnlab train translate``'s corpus generation
(``load_splits``) and the LM's final evaluation (``final_evaluation``).

The app module's ``Heartbeat`` is replaced by the real one on a fake terminal and a fake
clock that moves one second per reported count (``tests/training/test_progress_counted.py``
checks the helper's lines themselves); what is checked here is that the counts reach it:
every one the phase reports, of the phase's whole total, ending at ``total/total``.
"""

from __future__ import annotations

import functools

import pytest
import torch
from tests.training.test_progress_counted import FakeClock, Terminal, counts

from attnlab.apps import lm as lm_app
from attnlab.apps.translate import training as translate_training
from attnlab.data.char_tokenizer import CharTokenizer
from attnlab.data.stdlib_corpus import TextCorpus
from attnlab.data.synthetic import synthetic_corpus
from attnlab.models.gpt import GPT, GPTConfig
from attnlab.training.progress import Heartbeat, format_duration, format_rate


class TickingHeartbeat(Heartbeat):
    """The helper, its clock moved by one step before each count it receives."""

    def update(self, done: int, total: int | None = None) -> None:
        self.clock.now += self.clock.step
        super().update(done, total)


@pytest.fixture()
def drawn(monkeypatch):
    """``drawn(module)``: the module's Heartbeat draws on a fake terminal, returned."""
    monkeypatch.setenv("COLUMNS", "200")  # the redrawn line is cut to the terminal's width

    def patch(module) -> Terminal:
        term = Terminal()
        make = functools.partial(TickingHeartbeat, stream=term, clock=FakeClock(step=1.0), after_s=0.0)
        monkeypatch.setattr(module, "Heartbeat", make)
        return term

    return patch


def counted(text: str) -> list[tuple[int, int]]:
    """The counts of the redrawn lines, in order (a line drawn before the first count has none)."""
    return [c for line in text.split("\r") for c in counts(line)]


def test_train_translate_corpus_generation_shows_counted_pairs(drawn):
    term = drawn(translate_training)
    setup = translate_training.TranslatorSetup(corpus="tiny", seed=1)
    splits = translate_training.load_splits(setup, progress=True)
    reported = []
    synthetic_corpus("tiny", seed=1, on_progress=lambda done, total: reported.append((done, total)))
    total = len(splits.train) + len(splits.valid) + len(splits.test)
    assert len(reported) > 2 and reported[-1] == (total, total)
    # every count redrawn as it came, then the final line ("done in ...") once more
    assert counted(term.getvalue()) == [*reported, (total, total)]
    assert term.getvalue().startswith("\rgenerating the synthetic corpus ...")
    seconds = len(reported)  # the fake clock's: one per count
    assert term.getvalue().rstrip().endswith(
        f"{total}/{total} [{'#' * 24}] 100% | {format_rate(total / seconds)}/s | done in {format_duration(seconds)}")


def test_train_translate_corpus_generation_is_quiet_without_progress(drawn):
    term = drawn(translate_training)
    translate_training.load_splits(translate_training.TranslatorSetup(corpus="tiny", seed=1), progress=False)
    assert term.getvalue() == ""


@pytest.fixture()
def tiny_lm():
    torch.manual_seed(0)
    text = "def f(x):\n    return x + 1\n" * 12  # 324 characters
    tokenizer = CharTokenizer.train([text])
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    data = lm_app.LMData(TextCorpus(text, text), tokenizer, ids, ids)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=16, num_layers=1, num_heads=2, d_model=16))
    return model, data


def test_lm_final_evaluation_shows_counted_windows_of_both_passes(drawn, tiny_lm):
    model, data = tiny_lm
    assert len(data.val_ids) == 324
    term = drawn(lm_app)
    metrics = lm_app.final_evaluation(model, data, context=16, progress=True)
    # consecutive windows: (324 - 16) // 16 + 1 = 20; sliding (stride 8): (324 - 16) // 8 + 1 = 39;
    # 16 windows a batch, the sliding pass counted after the consecutive one's 20
    assert counted(term.getvalue()) == [(16, 59), (20, 59), (36, 59), (52, 59), (59, 59), (59, 59)]
    assert "scoring the validation windows ... 59/59" in term.getvalue()
    quiet = drawn(lm_app)
    assert lm_app.final_evaluation(model, data, context=16, progress=False) == metrics  # counting changes nothing
    assert quiet.getvalue() == ""
