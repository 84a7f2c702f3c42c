"""The lexicon of the synthetic translation task: English-like words and their made-up translations.

The source side uses real English words with their inflections (``cat``/``cats``,
``see``/``sees``/``saw``). Every content word gets a target *root* of two
consonant-vowel syllables (``cat`` -> ``vobi``), drawn once from ``random.Random(lexicon_seed)``
over the full embedded word lists, so the language does not change with the corpus
seed or with how many words a preset uses. Some nouns translate to two roots (a
compound: ``woman`` -> ``zota rozi``), and every noun has a grammatical gender
that adjectives agree with.

Target word forms (roots are exactly four letters, so forms of different classes
never collide):

=============  ==================================  =========================
class          form                                example
=============  ==================================  =========================
noun           root (+ ``n`` when definite)        ``vobi``, ``vobin``
adjective      root + gender/number suffix         ``nivero`` (masc. sg.)
verb           root + tense suffix                 ``gaves``, ``gaveti``
relative verb  root + tense suffix + ``ke``        ``gaveske``
postposition   root                                ``rama``
=============  ==================================  =========================
"""

from __future__ import annotations

import dataclasses
import random
from functools import lru_cache

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"

DEFINITE_SUFFIX = "n"
ADJECTIVE_SUFFIX = {("m", False): "ro", ("f", False): "ra", ("m", True): "roi", ("f", True): "rai"}
TENSE_SUFFIX = {"present": "s", "past": "ti", "future": "va"}
RELATIVE_SUFFIX = "ke"
PLURAL_PARTICLE = "ta"  # follows a plural noun: "vobi ta"
AGREEMENT_PARTICLE = "ru"  # follows a verb whose subject is plural
CONJUNCTIONS = {"and": "i", "but": "ma"}
PUNCTUATION = {".": "."}

# (singular, plural or "" for the regular plural)
NOUNS = [
    ("cat", ""), ("dog", ""), ("bird", ""), ("horse", ""), ("mouse", "mice"), ("child", "children"),
    ("man", "men"), ("woman", "women"), ("teacher", ""), ("farmer", ""), ("doctor", ""), ("king", ""),
    ("queen", ""), ("baker", ""), ("student", ""), ("girl", ""), ("boy", ""), ("friend", ""),
    ("wolf", "wolves"), ("fox", "foxes"), ("rabbit", ""), ("lion", ""), ("bear", ""), ("duck", ""),
    ("goat", ""), ("frog", ""), ("snake", ""), ("house", ""), ("tree", ""), ("table", ""),
    ("chair", ""), ("box", "boxes"), ("garden", ""), ("river", ""), ("city", "cities"), ("village", ""),
    ("road", ""), ("bridge", ""), ("boat", ""), ("car", ""), ("door", ""), ("window", ""),
    ("book", ""), ("letter", ""), ("apple", ""), ("bottle", ""), ("basket", ""), ("cup", ""),
    ("key", ""), ("ship", ""), ("mountain", ""), ("forest", ""), ("field", ""), ("hill", ""),
    ("lamp", ""), ("bed", ""), ("stone", ""), ("flower", ""), ("painter", ""), ("sailor", ""),
]
# (base, past); the third person singular follows the English spelling rule
TRANSITIVE = [
    ("see", "saw"), ("find", "found"), ("take", "took"), ("bring", "brought"), ("like", "liked"),
    ("want", "wanted"), ("help", "helped"), ("follow", "followed"), ("call", "called"),
    ("carry", "carried"), ("push", "pushed"), ("watch", "watched"), ("visit", "visited"),
    ("hear", "heard"), ("meet", "met"), ("love", "loved"), ("paint", "painted"), ("catch", "caught"),
    ("build", "built"), ("open", "opened"), ("buy", "bought"), ("sell", "sold"), ("chase", "chased"),
    ("feed", "fed"), ("know", "knew"), ("hold", "held"), ("draw", "drew"), ("wash", "washed"),
    ("hide", "hid"), ("throw", "threw"),
]
INTRANSITIVE = [
    ("sleep", "slept"), ("run", "ran"), ("sing", "sang"), ("dance", "danced"), ("laugh", "laughed"),
    ("wait", "waited"), ("swim", "swam"), ("sit", "sat"), ("work", "worked"), ("jump", "jumped"),
    ("cry", "cried"), ("smile", "smiled"), ("fall", "fell"), ("rest", "rested"), ("play", "played"),
]
ADJECTIVES = [
    "small", "big", "old", "young", "red", "blue", "green", "happy", "sad", "tall", "short",
    "quiet", "loud", "fast", "slow", "new", "bright", "dark", "warm", "cold", "clever", "brave",
    "lazy", "angry", "kind", "strong", "white", "black", "yellow", "heavy",
]
PREPOSITIONS = ["in", "on", "near", "under", "behind", "beside", "with", "without"]
NUMBERS = ["two", "three", "four", "five", "six", "seven"]


def regular_plural(word: str) -> str:
    """English spelling rule for ``-s``: fox -> foxes, city -> cities, see -> sees."""
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    if word.endswith("y") and word[-2] not in VOWELS:
        return word[:-1] + "ies"
    return word + "s"


@dataclasses.dataclass(frozen=True)
class Noun:
    singular: str
    plural: str
    roots: tuple[str, ...]  # one root, or two for a compound
    gender: str  # "m" | "f"

    def target(self, definite: bool) -> list[str]:
        """Target words: the last root carries the definite suffix."""
        return [*self.roots[:-1], self.roots[-1] + (DEFINITE_SUFFIX if definite else "")]


@dataclasses.dataclass(frozen=True)
class Verb:
    base: str
    third: str  # third person singular present
    past: str
    root: str
    transitive: bool

    def source(self, tense: str, plural_subject: bool) -> list[str]:
        if tense == "future":
            return ["will", self.base]
        if tense == "past":
            return [self.past]
        return [self.base if plural_subject else self.third]

    def target(self, tense: str, relative: bool) -> str:
        return self.root + TENSE_SUFFIX[tense] + (RELATIVE_SUFFIX if relative else "")


@dataclasses.dataclass(frozen=True)
class Adjective:
    source: str
    root: str

    def target(self, gender: str, plural: bool) -> str:
        return self.root + ADJECTIVE_SUFFIX[(gender, plural)]


@dataclasses.dataclass(frozen=True)
class Lexicon:
    nouns: tuple[Noun, ...]
    transitive: tuple[Verb, ...]
    intransitive: tuple[Verb, ...]
    adjectives: tuple[Adjective, ...]
    prepositions: dict[str, str]  # preposition -> postposition
    numbers: dict[str, str]

    def truncated(self, nouns: int, transitive: int, intransitive: int, adjectives: int) -> Lexicon:
        """The same language with fewer content words (the first ``n`` of each list)."""
        return dataclasses.replace(
            self, nouns=self.nouns[:nouns], transitive=self.transitive[:transitive],
            intransitive=self.intransitive[:intransitive], adjectives=self.adjectives[:adjectives],
        )

    def target_forms(self) -> dict[str, set[str]]:
        """Source word -> every target word a translation of it may be aligned to."""
        forms: dict[str, set[str]] = {}

        def add(source: str, *targets: str) -> None:
            forms.setdefault(source, set()).update(targets)

        for noun in self.nouns:
            words = {w for definite in (False, True) for w in noun.target(definite)}
            add(noun.singular, *words)
            add(noun.plural, *words, PLURAL_PARTICLE)
            add("the", noun.target(True)[-1])
        for verb in self.transitive + self.intransitive:
            for tense in TENSE_SUFFIX:
                for relative in (False, True):
                    word = verb.target(tense, relative)
                    add(verb.past if tense == "past" else verb.base, word, AGREEMENT_PARTICLE)
                    add(verb.third, word)
                    if tense == "future":
                        add("will", word)
                    if relative:
                        add("that", word)
        for adjective in self.adjectives:
            add(adjective.source, *(adjective.target(g, p) for g, p in ADJECTIVE_SUFFIX))
        for table in (self.prepositions, self.numbers, CONJUNCTIONS, PUNCTUATION):
            for source, target in table.items():
                add(source, target)
        return forms


def _roots(rng: random.Random, count: int, used: set[str]) -> list[str]:
    """``count`` distinct consonant-vowel-consonant-vowel roots not in ``used``."""
    roots = []
    while len(roots) < count:
        root = "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(2))
        if root not in used:
            used.add(root)
            roots.append(root)
    return roots


@lru_cache(maxsize=4)
def full_lexicon(seed: int = 0, compound_fraction: float = 0.2) -> Lexicon:
    """The whole embedded lexicon with target words drawn from ``random.Random(seed)``."""
    rng = random.Random(seed)
    used: set[str] = set()
    nouns = []
    for singular, plural in NOUNS:
        parts = 2 if rng.random() < compound_fraction else 1
        nouns.append(Noun(singular, plural or regular_plural(singular), tuple(_roots(rng, parts, used)),
                          rng.choice("mf")))
    verbs = [
        Verb(base, regular_plural(base), past, root, transitive)
        for table, transitive in ((TRANSITIVE, True), (INTRANSITIVE, False))
        for (base, past), root in zip(table, _roots(rng, len(table), used))
    ]
    return Lexicon(
        nouns=tuple(nouns),
        transitive=tuple(v for v in verbs if v.transitive),
        intransitive=tuple(v for v in verbs if not v.transitive),
        adjectives=tuple(Adjective(a, r) for a, r in zip(ADJECTIVES, _roots(rng, len(ADJECTIVES), used))),
        prepositions=dict(zip(PREPOSITIONS, _roots(rng, len(PREPOSITIONS), used))),
        numbers=dict(zip(NUMBERS, _roots(rng, len(NUMBERS), used))),
    )
