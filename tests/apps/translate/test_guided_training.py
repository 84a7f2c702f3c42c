"""Guided alignment training end to end: the translator's attention aligns better with the
gold links after a few dozen guided updates than after the same unguided updates."""

from __future__ import annotations

import pytest

from attnlab.apps.translate import (
    TranslatorSetup,
    alignment_scores,
    paper_train_config,
    rnn_train_config,
    train_translator,
)
from attnlab.data.synthetic import synthetic_corpus
from attnlab.errors import AttnlabError


@pytest.fixture(scope="module")
def splits():
    return synthetic_corpus("tiny", num_train=1000, num_valid=20, num_test=150)


def aer_after(splits, tmp_path, model: str, weight: float, steps: int = 40) -> float:
    setup = TranslatorSetup(model=model, corpus="tiny", preset="tiny", batch_size=32, eval_sentences=5,
                            guided_alignment=weight)
    make_config = rnn_train_config if model == "seq2seq" else paper_train_config
    config = make_config(out_dir=str(tmp_path / f"{model}-{weight}"), steps=steps, lr=1e-2, warmup_steps=5,
                         progress=False)
    trained = train_translator(setup, config, splits=splits)
    return alignment_scores(trained.translator, splits.test).best[2]  # the supervised head for the Transformer


@pytest.mark.parametrize("model", ["seq2seq", "transformer"])
def test_guided_alignment_lowers_aer(splits, tmp_path, model):
    unguided, guided = aer_after(splits, tmp_path, model, 0.0), aer_after(splits, tmp_path, model, 1.0)
    assert guided < unguided - 0.1, (guided, unguided)


def test_guided_alignment_needs_gold_alignments(splits, tmp_path):
    bare = type(splits)(*(type(c)(c.src, c.tgt) for _, c in splits.items()))
    setup = TranslatorSetup(model="seq2seq", preset="tiny", guided_alignment=1.0)
    with pytest.raises(AttnlabError, match="no gold word alignments"):
        train_translator(setup, rnn_train_config(out_dir=str(tmp_path / "x"), steps=1, progress=False), splits=bare)
