"""``attnlab compare``: the corpus made once for every variant, each variant's training share
net of its measured fixed cost (an injected clock, no wall time), and no ``--resume`` hint."""

from __future__ import annotations

import pytest

from attnlab.apps import compare
from attnlab.data import synthetic_corpus
from attnlab.data.corpus import CorpusSplits


def test_each_variant_trains_as_a_run_that_compare_cannot_resume(monkeypatch, tmp_path):
    """compare has no --resume, so its variants' interrupt and budget lines must not offer one."""
    seen = {}
    monkeypatch.setattr(compare, "train_translator",
                        lambda setup, config, fit_budget, splits: seen.setdefault(setup.model, config))
    settings = compare.CompareSettings(variants=["bahdanau", "transformer"], out=str(tmp_path), max_minutes=2)
    for name in settings.variants:
        compare.train_variant(name, settings, 60.0)
    assert set(seen) == {"seq2seq", "transformer"}
    assert [config.resumable for config in seen.values()] == [False, False]
    # the app's budget keeps EVAL_SHARE for the evaluation: 60 s of training are asked for
    assert [config.max_time_s * (1 - compare.EVAL_SHARE) for config in seen.values()] == pytest.approx([60.0, 60.0])


def test_training_share_is_the_equal_share_less_the_fixed_cost():
    assert compare.training_share(600.0, 5, None) == pytest.approx(120 * (1 - compare.FIRST_FIXED_GUESS))
    assert compare.training_share(456.0, 4, 60.0) == pytest.approx(54.0)
    assert compare.training_share(100.0, 2, 60.0) == pytest.approx(50 * compare.MIN_TRAIN_SHARE)  # the floor
    assert compare.training_share(-5.0, 1, 60.0) == 0.0


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


FIVE = ["none", "luong-dot", "luong-general", "bahdanau", "transformer"]


def run_compare(monkeypatch, tmp_path, fixed, variants):
    """compare under an injected clock: a corpus that takes 30 s to make, variants that cost
    ``fixed`` seconds beside their training; the made corpora, the shares, the lines, the end."""
    clock, made, runs, said = Clock(), [], [], []
    tiny = synthetic_corpus("tiny", seed=0)

    def make_corpus(setup, progress):
        made.append(setup.corpus)
        clock.now += 30.0
        return tiny

    def run(name, settings, train_s):
        runs.append(train_s)
        clock.now += fixed + train_s
        return compare.VariantResult(name=name, bleu=0.0, chrf=0.0, aer=None, parameters=1, steps=1,
                                     train_seconds=train_s, train_tokens_per_s=1.0, decode_sentences_per_s=1.0,
                                     peak_memory_mib=1.0, bleu_by_length={})

    monkeypatch.setattr(compare, "load_splits", make_corpus)
    monkeypatch.setattr(compare, "run_variant", run)
    settings = compare.CompareSettings(variants=variants, corpus="tiny", out=str(tmp_path / "cmp"), max_minutes=10,
                                       progress=False)
    settings.started = 0.0
    compare.compare(settings, echo=said.append, clock=clock)
    return made, runs, said, clock.now


@pytest.mark.parametrize("fixed", [10.0, 30.0, 60.0])
def test_the_command_ends_within_its_budget_whatever_the_fixed_cost(monkeypatch, tmp_path, fixed):
    """``compare --max-minutes 10`` of 5 variants whose processes cost ``fixed`` seconds beside
    training (~60 s measured at load, where equal shares of 120 s made such a command take
    ~15 minutes): the whole command ends at 600 s, the corpus made once, before the variants."""
    made, runs, said, end = run_compare(monkeypatch, tmp_path, fixed, FIVE)
    assert made == ["tiny"]
    assert CorpusSplits.load(tmp_path / "cmp" / compare.CORPUS_FOLDER).test.src == synthetic_corpus("tiny", seed=0).test.src
    assert len(runs) == 5 and all(t > 0 for t in runs)
    assert end == pytest.approx(600.0)  # spent, not overrun nor left over: the later shares use what the first left
    assert said[0] == "[1/5] none: 80 s of training" and not any("overruns" in line for line in said)


def test_fixed_costs_beyond_the_budget_are_said_not_hidden(monkeypatch, tmp_path):
    """Twelve variants of 60 s fixed cost cannot fit in 10 minutes: each trains the floor and
    the command says it overruns."""
    _, runs, said, end = run_compare(monkeypatch, tmp_path, 60.0, list(compare.DEFAULT_VARIANTS))
    assert len(runs) == 12 and end > 600.0
    assert sum("overruns (give more --max-minutes or fewer --variants)" in line for line in said) == 1


def test_the_corpus_round_trips_and_the_child_trains_on_it(monkeypatch, tmp_path):
    splits = synthetic_corpus("tiny", seed=0)
    splits.save(tmp_path / compare.CORPUS_FOLDER)
    loaded = CorpusSplits.load(tmp_path / compare.CORPUS_FOLDER)
    for (_, a), (_, b) in zip(splits.items(), loaded.items()):
        assert (a.src, a.tgt, a.alignments) == (b.src, b.tgt, b.alignments)
    seen = {}

    def measure(name, settings, train_s, corpus):
        seen.update(name=name, train_s=train_s, src=corpus.train.src)
        raise SystemExit(0)

    monkeypatch.setattr(compare, "measure_variant", measure)
    settings = compare.config_to_dict(compare.CompareSettings(out=str(tmp_path)))
    with pytest.raises(SystemExit):
        compare._child("dot", settings, 42.0)
    assert seen == {"name": "dot", "train_s": 42.0, "src": splits.train.src}
