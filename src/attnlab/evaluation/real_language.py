"""Scoring translations of real UI messages, and two baselines that give the scores meaning.

Metrics (corpus level, sacrebleu): BLEU with the language's standard tokenizer (``zh``
for Chinese, which splits every Han character; ``char`` for Japanese, Korean and Thai
where sacrebleu's own ones need MeCab; ``13a`` elsewhere), chrF, the exact-match rate
(the hypothesis is the reference, character for character after whitespace is
collapsed) and the placeholder accuracy (sentences with placeholders whose translation
keeps exactly them, :func:`attnlab.data.placeholders.placeholder_accuracy`).

Baselines a user understands:

* **copy** - output the English source unchanged (scores what is shared for free:
  placeholders, names, numbers, command options);
* **nearest neighbour** - output the translation of the most similar training message,
  similarity the cosine of TF-IDF weighted character 2-4-grams (scikit-learn). It is
  what a translation memory does; a model must beat it to have learnt more than lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from attnlab.data.placeholders import placeholder_accuracy
from attnlab.errors import AttnlabError
from attnlab.evaluation.metrics import bleu, chrf

CHARACTER_TOKENIZED = {"ja", "ko", "th", "lo", "km", "my"}


def bleu_tokenizer(language: str) -> str:
    """sacrebleu's tokenizer for a target language code (``zh_CN`` -> ``"zh"``)."""
    code = language.split("_")[0].split("@")[0].lower()
    return "zh" if code == "zh" else "char" if code in CHARACTER_TOKENIZED else "13a"


@dataclass
class RealLanguageScores:
    bleu: float
    chrf: float
    exact: float  # percent of sentences translated exactly
    placeholders: float  # percent of sentences with placeholders that keep them all (nan: none)
    placeholder_sentences: int
    sentences: int

    def summary(self) -> str:
        return (f"BLEU {self.bleu:.1f} | chrF {self.chrf:.1f} | exact {self.exact:.1f}% | "
                f"placeholders {self.placeholders:.1f}% of {self.placeholder_sentences}")

    def row(self) -> list[str]:
        """Table cells: BLEU, chrF, exact %, placeholder %."""
        return [f"{self.bleu:.1f}", f"{self.chrf:.1f}", f"{self.exact:.1f}", f"{self.placeholders:.1f}"]


def score_translations(sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str],
                       language: str) -> RealLanguageScores:
    """BLEU (the language's tokenizer), chrF, exact-match and placeholder accuracy."""
    if not len(sources) == len(hypotheses) == len(references) or not sources:
        raise AttnlabError(f"expected as many sources, hypotheses and references (> 0), got "
                           f"{len(sources)}, {len(hypotheses)}, {len(references)}")
    hyps, refs = [" ".join(h.split()) for h in hypotheses], [" ".join(r.split()) for r in references]
    exact = sum(h == r for h, r in zip(hyps, refs)) / len(refs)
    kept, judged = placeholder_accuracy(sources, hyps)
    return RealLanguageScores(bleu(hyps, refs, tokenize=bleu_tokenizer(language)), chrf(hyps, refs),
                              100 * exact, 100 * kept, judged, len(refs))


def copy_source(sources: Sequence[str]) -> list[str]:
    """The copy baseline: every source is its own translation."""
    return list(sources)


def nearest_neighbour(train_src: Sequence[str], train_tgt: Sequence[str], sources: Sequence[str],
                      chunk: int = 1024) -> list[str]:
    """The translation of the training message nearest to each source (char 2-4-gram TF-IDF cosine)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(train_src) != len(train_tgt) or not train_src:
        raise AttnlabError("nearest_neighbour: expected as many training sources as targets (> 0)")
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, lowercase=True)
    memory = vectorizer.fit_transform(train_src)  # (N, V), rows L2-normalised
    queries = vectorizer.transform(sources)  # (M, V)
    best: list[int] = []
    for start in range(0, queries.shape[0], chunk):
        similarity = (queries[start : start + chunk] @ memory.T).toarray()  # (m, N) cosines
        best += np.asarray(similarity.argmax(axis=1)).ravel().tolist()
    return [train_tgt[i] for i in best]
