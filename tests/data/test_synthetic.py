"""The synthetic corpus: determinism, translation rules, gold alignments and their statistics."""

import re
from collections import Counter

import pytest

from attnlab.data.corpus import CorpusSplits, format_pharaoh, parse_pharaoh
from attnlab.data.lexicon import ADJECTIVE_SUFFIX, full_lexicon
from attnlab.data.synthetic import SYNTHETIC_PRESETS, Piece, combine, synthetic_corpus
from attnlab.errors import AttnlabError


@pytest.fixture(scope="module")
def tiny():
    return synthetic_corpus("tiny")


def test_deterministic_by_seed(tiny):
    again = synthetic_corpus("tiny")
    assert again == tiny
    other = synthetic_corpus("tiny", seed=1)
    assert other.train.src != tiny.train.src
    # the language itself does not depend on the corpus seed: shared sentences translate alike
    ours = dict(zip(tiny.train.src, tiny.train.tgt))
    shared = [(s, t) for s, t in zip(other.train.src, other.train.tgt) if s in ours]
    assert len(shared) > 10
    assert all(ours[s] == t for s, t in shared)


def test_sizes_lengths_and_distinct_splits(tiny):
    config = SYNTHETIC_PRESETS["tiny"]
    assert [len(tiny.train), len(tiny.valid), len(tiny.test)] == [config.num_train, config.num_valid, config.num_test]
    sources = tiny.train.src + tiny.valid.src + tiny.test.src
    assert len(set(sources)) == len(sources)
    assert all(config.min_len <= len(s.split()) <= config.max_len for s in sources)


def test_every_link_points_to_a_translation_of_its_source_word(tiny):
    forms = full_lexicon(0).target_forms()
    for corpus in (tiny.train, tiny.test):
        for src, tgt, alignment in zip(corpus.src, corpus.tgt, corpus.alignments):
            s, t = src.split(), tgt.split()
            for i, j in alignment:
                assert t[j] in forms[s[i]], (src, tgt, i, j)
            # every target word has a source; only the article "a" is left unaligned
            assert {j for _, j in alignment} == set(range(len(t)))
            assert {s[i] for i in set(range(len(s))) - {i for i, _ in alignment}} <= {"a"}


def test_simple_sentences_follow_the_rules_by_hand(tiny):
    """'the N1 V the N2 .' -> 'N1+n N2+n V+s .' with 'the N' fused (singular nouns, present tense)."""
    lex = full_lexicon(0)
    nouns = {n.singular: n for n in lex.nouns}
    verbs = {v.third: v for v in lex.transitive}
    checked = 0
    for src, tgt, alignment in zip(tiny.train.src, tiny.train.tgt, tiny.train.alignments):
        m = re.fullmatch(r"the (\w+) (\w+) the (\w+) \.", src)
        if not (m and m[1] in nouns and m[2] in verbs and m[3] in nouns):
            continue
        n1, v, n2 = nouns[m[1]], verbs[m[2]], nouns[m[3]]
        expected = [*n1.roots[:-1], n1.roots[-1] + "n", *n2.roots[:-1], n2.roots[-1] + "n", v.root + "s", "."]
        assert tgt.split() == expected
        k1, k2 = len(n1.roots), len(n2.roots)
        gold = {(1, j) for j in range(k1)} | {(0, k1 - 1)}
        gold |= {(4, k1 + j) for j in range(k2)} | {(3, k1 + k2 - 1)}
        gold |= {(2, k1 + k2), (5, k1 + k2 + 1)}
        assert alignment == gold
        checked += 1
    assert checked >= 3


def test_adjectives_agree_and_follow_the_noun(tiny):
    lex = full_lexicon(0)
    adjectives = {a.source: a for a in lex.adjectives}
    nouns = {n.plural: (n, True) for n in lex.nouns} | {n.singular: (n, False) for n in lex.nouns}
    checked = 0
    for src, tgt, alignment in zip(tiny.train.src, tiny.train.tgt, tiny.train.alignments):
        s, t = src.split(), tgt.split()
        for i, word in enumerate(s[:-1]):
            if word in adjectives and s[i + 1] in nouns:
                noun, plural = nouns[s[i + 1]]
                (j,) = [j for a, j in alignment if a == i]
                assert t[j] == adjectives[word].root + ADJECTIVE_SUFFIX[(noun.gender, plural)]
                assert j > max(j2 for a, j2 in alignment if a == i + 1)  # after the noun (and "ta")
                checked += 1
    assert checked > 100


def test_alignments_are_neither_monotonic_nor_one_to_one(tiny):
    crossing = one_to_many = many_to_one = 0
    for alignment in tiny.train.alignments:
        links = sorted(alignment)
        crossing += any(i1 < i2 and j1 > j2 for i1, j1 in links for i2, j2 in links)
        one_to_many += max(Counter(i for i, _ in links).values()) > 1
        many_to_one += max(Counter(j for _, j in links).values()) > 1
    n = len(tiny.train)
    assert crossing / n > 0.5
    assert one_to_many / n > 0.3
    assert many_to_one / n > 0.3


def test_lexicon_words_do_not_collide():
    lex = full_lexicon(0)
    forms = lex.target_forms()
    source_words = [n.singular for n in lex.nouns] + [n.plural for n in lex.nouns]
    source_words += [w for v in lex.transitive + lex.intransitive for w in (v.base, v.third, v.past)]
    source_words += [a.source for a in lex.adjectives] + list(lex.prepositions) + list(lex.numbers)
    assert len(source_words) == len(set(source_words))
    owners = Counter(w for words in (forms[n.singular] for n in lex.nouns) for w in words)
    owners.update(w for a in lex.adjectives for w in forms[a.source])
    owners.update(w for v in lex.transitive + lex.intransitive for w in forms[v.base] - {"ru"})
    assert max(owners.values()) == 1


def test_combine_shifts_links_and_reorders():
    a = Piece(["x", "y"], [("X", (0,)), ("Y", (1, 0))])
    b = Piece(["z"], [("Z", (0,))])
    out = combine([a, b], [1, 0])
    assert out.src == ["x", "y", "z"]
    assert out.tgt == [("Z", (2,)), ("X", (0,)), ("Y", (1, 0))]


def test_save_load_round_trip(tmp_path, tiny):
    small = CorpusSplits(tiny.train.subset(list(range(50))), tiny.valid.subset([0, 1]), tiny.test.subset([2]))
    small.save(tmp_path)
    assert (tmp_path / "train.align").read_text().splitlines()[0] == format_pharaoh(small.train.alignments[0])
    assert CorpusSplits.load(tmp_path) == small


def test_pharaoh_parse_and_errors():
    assert parse_pharaoh("0-1 2-0  3-3") == {(0, 1), (2, 0), (3, 3)}
    assert format_pharaoh({(2, 0), (0, 1)}) == "0-1 2-0"
    with pytest.raises(AttnlabError, match="f.align:3: expected Pharaoh pairs"):
        parse_pharaoh("0-1 2:0", "f.align:3")


def test_bad_config():
    with pytest.raises(AttnlabError, match="p_plural"):
        synthetic_corpus("tiny", p_plural=1.5)
    with pytest.raises(AttnlabError, match="min_len"):
        synthetic_corpus("tiny", min_len=10, max_len=5)
    with pytest.raises(AttnlabError, match="unknown preset"):
        synthetic_corpus("huge")
    with pytest.raises(AttnlabError, match="distinct sentences"):
        synthetic_corpus("tiny", min_len=3, max_len=3, num_train=200, num_valid=1, num_test=1)
