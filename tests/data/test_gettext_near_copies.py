"""Programs of one package under unrelated names are linked by their shared rare phrases
and never split; held-out messages with a near-copy in train are counted."""

from __future__ import annotations

from pathlib import Path

from tests.data.test_gettext_corpus import FR_PLURAL, E, filler, write_catalog

from attnlab.data.gettext_corpus import load_gettext
from attnlab.data.gettext_corpus.near_copies import (
    count_near_copies,
    message_ngrams,
    near_copy_count,
    shared_ngram_links,
)
from attnlab.data.gettext_corpus.reading import RawPair
from attnlab.data.gettext_corpus.splitting import group_catalogs

LINKER = [f"relocation {w} truncated to fit section {i}" for i, w in enumerate("abcdefghijklmnopqrstuvwxyz")]


def test_ngrams_normalise_placeholders_and_case():
    assert message_ngrams("Could not open %s now", 3) == {"could not open", "not open PH", "open PH now"}
    assert message_ngrams("Two words", 4) == set()


def test_rare_shared_phrases_link_catalogs_common_ones_do_not():
    pairs = [RawPair(f"{m} in {c}", "x", c) for c in ("ld", "gold") for m in LINKER]
    common = [f"could not open the file {i}" for i in range(30)]  # in 7 catalogs: not rare
    pairs += [RawPair(m, "x", c) for c in "abcdefg" for m in common]
    pairs += [RawPair(f"unrelated message number {i} of {c}", "x", c) for c in ("ld", "gold", "a") for i in range(5)]
    links = shared_ngram_links(pairs)
    assert [(a, b) for a, b, _ in links] == [("gold", "ld")]
    assert not shared_ngram_links(pairs, min_shared=1000)


def test_linked_programs_never_sit_on_two_sides(tmp_path: Path):
    root = tmp_path / "locale"
    domains = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    for d in domains:
        write_catalog(root, "fr", d, filler(d, 10), plural=FR_PLURAL)
    for d in ("ld", "gold"):  # no family, no identical message: only their phrases tie them
        write_catalog(root, "fr", d, [E(f"{m} ({d})", f"{m} fr ({d})") for m in LINKER], plural=FR_PLURAL)
    for seed in range(8):
        splits = load_gettext("fr", roots=[root], seed=seed, valid_fraction=0.1, test_fraction=0.1)
        side = {c: name for name, cs in splits.catalogs.items() for c in cs}
        assert side["ld"] == side["gold"]
    counts = count_near_copies(splits, splits.report)  # ld's messages are near-copies of gold's, on one side
    assert counts == {"test": (0, len(splits.test)), "valid": (0, len(splits.valid))}
    assert any("near-copy in train" in line for line in splits.report.lines())
    pairs = [RawPair(f"{m} ({d})", "x", d) for d in ("ld", "gold") for m in LINKER]
    assert group_catalogs(pairs, phrases=False) == [["gold"], ["ld"]]  # family and identical messages: apart
    assert group_catalogs(pairs) == [["gold", "ld"]]


def test_near_copy_count():
    train = ["Could not open file %s", "Save the document", "Print"]
    held = ["Could not open file %s: %s", "Quit the application", "Save the document now"]
    assert near_copy_count(train, held, threshold=0.9) == 2  # cosines 0.99 and 0.97; "Quit ..." 0.45
    assert near_copy_count(train, held, threshold=0.99) == 0
    assert near_copy_count(train, [], threshold=0.9) == 0
