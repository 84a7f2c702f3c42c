"""Translation end to end: train a Transformer or RNN translator, translate, evaluate, explain.

    from attnlab.apps import translate
    run = translate.train(translate.TranslateSettings(steps=500, out="runs/tr"))
    run.translator.translate(["the small cat sees a dog ."])
    translate.evaluate(run.translator, run.trained.splits.test).summary()
    translate.attentions(run.translator, ["the small cat sees a dog ."])
    translate.fill_po(run.translator, "po/fr.po", "po/fr.filled.po").line()   # filled N, kept M, refused K

See docs/translate.md.
"""

from attnlab.apps.translate.app import (
    MAX_BATCH,
    MAX_BEAM,
    TranslateSettings,
    TranslationRun,
    attentions,
    check_search,
    checkpoint_language,
    checkpoint_steps,
    fill_po,
    line_batches,
    load,
    train,
    translate_checked,
    undertrained_note,
)
from attnlab.apps.translate.catalog import FillReport, fill_catalog
from attnlab.apps.translate.evaluation import (
    AlignmentScores,
    TranslationScores,
    alignment_scores,
    evaluate_translator,
)
from attnlab.apps.translate.training import (
    TrainedTranslator,
    TranslatorSetup,
    paper_train_config,
    rnn_train_config,
    train_translator,
)
from attnlab.apps.translate.translator import PairAttention, Translator

evaluate = evaluate_translator

__all__ = [
    "MAX_BATCH",
    "MAX_BEAM",
    "AlignmentScores",
    "FillReport",
    "PairAttention",
    "TrainedTranslator",
    "TranslateSettings",
    "TranslationRun",
    "TranslationScores",
    "Translator",
    "TranslatorSetup",
    "alignment_scores",
    "attentions",
    "check_search",
    "checkpoint_language",
    "checkpoint_steps",
    "evaluate",
    "evaluate_translator",
    "fill_catalog",
    "fill_po",
    "line_batches",
    "load",
    "paper_train_config",
    "rnn_train_config",
    "train",
    "train_translator",
    "translate_checked",
    "undertrained_note",
]
