"""Translation end to end: train a Transformer or RNN translator, translate, evaluate, explain.

    from attnlab.translation import TranslatorSetup, paper_train_config, train_translator
    trained = train_translator(TranslatorSetup(), paper_train_config(steps=500))
    trained.translator.translate(["the small cat sees a dog ."])
    evaluate_translator(trained.translator, trained.splits.test).summary()

See docs/translate.md.
"""

from attnlab.translation.evaluation import (
    AlignmentScores,
    TranslationScores,
    alignment_scores,
    evaluate_translator,
)
from attnlab.translation.training import (
    TrainedTranslator,
    TranslatorSetup,
    paper_train_config,
    rnn_train_config,
    train_translator,
)
from attnlab.translation.translator import PairAttention, Translator

__all__ = [
    "AlignmentScores",
    "PairAttention",
    "TrainedTranslator",
    "TranslationScores",
    "Translator",
    "TranslatorSetup",
    "alignment_scores",
    "evaluate_translator",
    "paper_train_config",
    "rnn_train_config",
    "train_translator",
]
