"""The embedded translation task: a synthetic parallel corpus with gold word alignments.

Sentences of an English-like source language are drawn from a small grammar and
translated into a made-up target language that

* is verb-final (subject - object - place - verb, where English is subject - verb - object - place),
* puts adjectives and numbers after the noun, and adjectives agree with the noun's
  gender and number (``nivero`` / ``nivera`` / ``niveroi`` / ``niverai``),
* uses postpositions (``with the woman`` -> ``zota rozin neli``),
* puts relative clauses before their noun (``the cat that sees a dog`` -> ``vini gaveske vobin``),
* fuses several source words into one target word (``the cat`` -> ``vobin``,
  ``will see`` -> ``gaveva``, ``that sees`` -> ``gaveske``), splits one source word
  into two (``cats`` -> ``vobi ta``, compounds ``woman`` -> ``zota rozi``, a plural
  subject adds ``ru`` after the verb) and drops ``a``.

So the gold alignment is neither monotonic nor one-to-one, yet the translation is a
function of the source: a model can learn it exactly. The alignment of every pair is
recorded while it is generated (a pair ``(i, j)``: source word ``i`` produced target
word ``j``). ``docs/data.md`` has the rule table and a worked example.

Notation: a :class:`Piece` is a source word list plus target words, each linked to
positions in that source list; pieces are combined in source order, and their target
words are concatenated in target order with the links shifted.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from attnlab.config import preset
from attnlab.data.corpus import SPLITS, CorpusSplits, ParallelCorpus
from attnlab.data.lexicon import (
    AGREEMENT_PARTICLE,
    CONJUNCTIONS,
    PLURAL_PARTICLE,
    Lexicon,
    full_lexicon,
)
from attnlab.errors import AttnlabError

TENSES = ("present", "past", "future")
PROGRESS_EVERY = 500  # distinct pairs between two on_progress calls


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of the synthetic corpus. Lengths count source words (with ``.``)."""

    num_train: int = 30000
    num_valid: int = 1000
    num_test: int = 1000
    min_len: int = 4
    max_len: int = 25
    nouns: int = 40
    transitive_verbs: int = 20
    intransitive_verbs: int = 10
    adjectives: int = 20
    p_plural: float = 0.4
    p_definite: float = 0.5
    p_number: float = 0.5  # an indefinite plural gets a number word ("two cats")
    p_adjective: float = 0.4
    p_transitive: float = 0.7
    p_place: float = 0.3  # a clause gets a prepositional phrase
    p_relative: float = 0.2  # a noun phrase gets a relative clause ("that ...")
    max_depth: int = 2  # relative clauses inside relative clauses
    p_conjunction: float = 0.15  # another clause joined with "and"/"but"
    max_clauses: int = 2
    seed: int = 0
    lexicon_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("num_train", "num_valid", "num_test", "nouns", "transitive_verbs",
                     "intransitive_verbs", "adjectives", "max_clauses"):
            if getattr(self, name) < 1:
                raise AttnlabError(f"SyntheticConfig.{name}: expected >= 1, got {getattr(self, name)}")
        if not 3 <= self.min_len <= self.max_len:
            raise AttnlabError(f"SyntheticConfig: expected 3 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("p_") and not 0.0 <= value <= 1.0:
                raise AttnlabError(f"SyntheticConfig.{f.name}: expected a probability in [0, 1], got {value}")


SYNTHETIC_PRESETS: dict[str, SyntheticConfig] = {
    # unit tests and smoke runs: a handful of words, short sentences
    "tiny": SyntheticConfig(num_train=2000, num_valid=200, num_test=200, max_len=12, nouns=12,
                            transitive_verbs=6, intransitive_verbs=4, adjectives=6, max_depth=1,
                            p_conjunction=0.0),
    # the default of `attnlab train translate` / `attnlab demo`
    "default": SyntheticConfig(),
    # every embedded word, longer sentences, deeper nesting
    "hard": SyntheticConfig(num_train=50000, max_len=40, nouns=60, transitive_verbs=30,
                            intransitive_verbs=15, adjectives=30, max_depth=3, p_relative=0.3,
                            p_conjunction=0.3, max_clauses=3),
}


@dataclasses.dataclass
class Piece:
    """Source words and target words; ``tgt[k] = (word, positions in src it came from)``."""

    src: list[str]
    tgt: list[tuple[str, tuple[int, ...]]]


def combine(pieces: list[Piece], target_order: list[int]) -> Piece:
    """Concatenate ``pieces`` in source order and their targets in ``target_order``."""
    offsets, total = [], 0
    for piece in pieces:
        offsets.append(total)
        total += len(piece.src)
    tgt = [
        (word, tuple(i + offsets[k] for i in links))
        for k in target_order
        for word, links in pieces[k].tgt
    ]
    return Piece([w for piece in pieces for w in piece.src], tgt)


class Grammar:
    """Draws source sentences from the grammar and translates them, piece by piece."""

    def __init__(self, config: SyntheticConfig, rng: random.Random):
        self.config = config
        self.rng = rng
        self.lexicon: Lexicon = full_lexicon(config.lexicon_seed).truncated(
            config.nouns, config.transitive_verbs, config.intransitive_verbs, config.adjectives
        )

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def noun_phrase(self, depth: int) -> tuple[Piece, bool]:
        """``[the|a|two] [adj] noun [that ...]`` -> ``[relative] noun(+n) [ta] [adj] [two]``."""
        c, lex = self.config, self.lexicon
        noun = self.rng.choice(lex.nouns)
        plural, definite = self.chance(c.p_plural), self.chance(c.p_definite)
        number = self.rng.choice(list(lex.numbers)) if plural and not definite and self.chance(c.p_number) else None
        adjective = self.rng.choice(lex.adjectives) if self.chance(c.p_adjective) else None
        determiner = "the" if definite else number or (None if plural else "a")
        src = [w for w in (determiner, adjective and adjective.source) if w]
        head = len(src)  # position of the noun
        src.append(noun.plural if plural else noun.singular)
        *parts, last = noun.target(definite)
        tgt = [(w, (head,)) for w in parts]
        tgt.append((last, (0, head) if definite else (head,)))
        if plural:
            tgt.append((PLURAL_PARTICLE, (head,)))
        if adjective:
            tgt.append((adjective.target(noun.gender, plural), (head - 1,)))
        if number:
            tgt.append((lex.numbers[number], (0,)))
        core = Piece(src, tgt)
        if depth < c.max_depth and self.chance(c.p_relative):
            return combine([core, self.verb_phrase(plural, depth + 1, relative=True)], [1, 0]), plural
        return core, plural

    def verb_phrase(self, plural_subject: bool, depth: int, relative: bool) -> Piece:
        """``[that] verb [object] [prep NP]`` -> ``[object] [NP postp] verb(+ke) [ru]``."""
        c, lex = self.config, self.lexicon
        transitive = self.chance(c.p_transitive)
        verb = self.rng.choice(lex.transitive if transitive else lex.intransitive)
        tense = self.rng.choice(TENSES)
        src = (["that"] if relative else []) + verb.source(tense, plural_subject)
        tgt = [(verb.target(tense, relative), tuple(range(len(src))))]
        if plural_subject:
            tgt.append((AGREEMENT_PARTICLE, (len(src) - 1,)))
        pieces = [Piece(src, tgt)]
        if transitive:
            pieces.append(self.noun_phrase(depth)[0])
        if self.chance(c.p_place):
            preposition = self.rng.choice(list(lex.prepositions))
            place = self.noun_phrase(depth)[0]
            pieces.append(combine([Piece([preposition], [(lex.prepositions[preposition], (0,))]), place], [1, 0]))
        return combine(pieces, [*range(1, len(pieces)), 0])

    def clause(self) -> Piece:
        subject, plural = self.noun_phrase(depth=0)
        return combine([subject, self.verb_phrase(plural, depth=0, relative=False)], [0, 1])

    def sentence(self) -> Piece:
        """Clauses joined by conjunctions, then ``.``; clause order is kept."""
        pieces = [self.clause()]
        while len(pieces) < 2 * self.config.max_clauses - 1 and self.chance(self.config.p_conjunction):
            conjunction = self.rng.choice(list(CONJUNCTIONS))
            pieces += [Piece([conjunction], [(CONJUNCTIONS[conjunction], (0,))]), self.clause()]
        pieces.append(Piece(["."], [(".", (0,))]))
        return combine(pieces, list(range(len(pieces))))


def to_pair(piece: Piece) -> tuple[str, str, set[tuple[int, int]]]:
    """A piece as (source sentence, target sentence, alignment pairs)."""
    alignment = {(i, j) for j, (_, links) in enumerate(piece.tgt) for i in links}
    return " ".join(piece.src), " ".join(w for w, _ in piece.tgt), alignment


def synthetic_corpus(
    config: SyntheticConfig | str = "default", *, on_progress: Callable[[int, int], None] | None = None,
    **overrides,
) -> CorpusSplits:
    """Generate train/valid/test splits of distinct sentence pairs, deterministic in ``config``.

    ``synthetic_corpus("tiny", seed=3)`` takes the preset and replaces its fields.
    ``on_progress(done, total)`` is called every ``PROGRESS_EVERY`` distinct pairs and at the
    last one (``done == total``, the three splits' sizes summed).
    """
    if isinstance(config, str):
        config = preset(SYNTHETIC_PRESETS, config, **overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    grammar = Grammar(config, random.Random(config.seed))
    wanted = config.num_train + config.num_valid + config.num_test
    pairs: dict[str, tuple[str, set[tuple[int, int]]]] = {}
    for _ in range(50 * wanted):
        piece = grammar.sentence()
        if config.min_len <= len(piece.src) <= config.max_len:
            src, tgt, alignment = to_pair(piece)
            if src not in pairs:
                pairs[src] = (tgt, alignment)
                if on_progress is not None and (len(pairs) % PROGRESS_EVERY == 0 or len(pairs) == wanted):
                    on_progress(len(pairs), wanted)
            if len(pairs) == wanted:
                break
    else:
        raise AttnlabError(
            f"SyntheticConfig: drew only {len(pairs)} distinct sentences of {config.min_len}-{config.max_len} "
            f"words, {wanted} wanted; allow longer sentences or more words"
        )
    items = list(pairs.items())
    bounds = [0, config.num_train, config.num_train + config.num_valid, wanted]
    splits = {}
    for name, start, stop in zip(SPLITS, bounds, bounds[1:]):
        part = items[start:stop]
        splits[name] = ParallelCorpus([s for s, _ in part], [t for _, (t, _) in part], [a for _, (_, a) in part])
    return CorpusSplits(**splits)
