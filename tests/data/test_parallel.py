"""User parallel data: TSV and two-file readers, their errors, and the deterministic split."""

import pytest

from attnlab.data.corpus import ParallelCorpus, read_tsv
from attnlab.data.parallel import load_parallel, read_parallel_files, split_corpus
from attnlab.errors import AttnlabError


def write(path, text: str):
    path.write_bytes(text.encode("utf-8"))
    return path


def test_tsv_skips_and_counts_empty_lines(tmp_path):
    f = write(tmp_path / "p.tsv", "a  b\tx y\n\n   \nc\tz\r\nd\tw")
    corpus = read_tsv(f)
    assert corpus.src == ["a b", "c", "d"]
    assert corpus.tgt == ["x y", "z", "w"]
    assert corpus.skipped_empty == 2
    assert "2 empty lines skipped" in corpus.describe()


@pytest.mark.parametrize(
    "text,message",
    [
        ("a\tb\nno tab here\n", r"p.tsv:2: expected 2 tab-separated columns .* got 1"),
        ("a\tb\tc\n", r"p.tsv:1: expected 2 tab-separated columns .* got 3"),
        ("a\tb\n\t b\n", r"p.tsv:2: empty source sentence"),
        ("a\t \n", r"p.tsv:1: empty target sentence"),
    ],
)
def test_tsv_malformed_lines_name_file_and_line(tmp_path, text, message):
    f = write(tmp_path / "p.tsv", text)
    with pytest.raises(AttnlabError, match=message):
        read_tsv(f)


def test_unreadable_files(tmp_path):
    f = tmp_path / "bad.tsv"
    f.write_bytes(b"a\tb\nc\t\xff\xfe\n")
    with pytest.raises(AttnlabError, match=r"bad.tsv:2: not valid UTF-8"):
        read_tsv(f)
    with pytest.raises(AttnlabError, match="file not found"):
        read_tsv(tmp_path / "missing.tsv")
    with pytest.raises(AttnlabError, match="no such file or folder"):
        load_parallel(tmp_path / "missing.tsv")


def test_two_files(tmp_path):
    s = write(tmp_path / "a.src", "one two\n\nthree\n")
    t = write(tmp_path / "a.tgt", "uno dos\n\ntres\n")
    corpus = read_parallel_files(s, t)
    assert (corpus.src, corpus.tgt, corpus.skipped_empty) == (["one two", "three"], ["uno dos", "tres"], 1)
    write(tmp_path / "b.tgt", "uno dos\n")
    with pytest.raises(AttnlabError, match="a.src has 3 lines but .*b.tgt has 1"):
        read_parallel_files(s, tmp_path / "b.tgt")
    write(tmp_path / "c.tgt", "uno\n\n\n")
    with pytest.raises(AttnlabError, match=r"c.tgt:3: empty line, but line 3 of .*a.src is not empty"):
        read_parallel_files(s, tmp_path / "c.tgt")


def test_split_is_deterministic_disjoint_and_complete():
    corpus = ParallelCorpus([f"s{i}" for i in range(100)], [f"t{i}" for i in range(100)], skipped_empty=4)
    a = split_corpus(corpus, 0.1, 0.05, seed=3)
    b = split_corpus(corpus, 0.1, 0.05, seed=3)
    c = split_corpus(corpus, 0.1, 0.05, seed=4)
    assert a == b and a.valid.src != c.valid.src
    assert [len(a.train), len(a.valid), len(a.test)] == [85, 10, 5]
    assert sorted(a.train.src + a.valid.src + a.test.src) == sorted(corpus.src)
    assert all(s[1:] == t[1:] for s, t in zip(a.train.src, a.train.tgt))  # pairs stay together
    assert a.train.skipped_empty == 4
    with pytest.raises(AttnlabError, match="too few"):
        split_corpus(corpus.subset([0, 1]))
    with pytest.raises(AttnlabError, match="valid_fraction"):
        split_corpus(corpus, valid_fraction=0.0)


def test_load_parallel_dispatch(tmp_path):
    f = write(tmp_path / "p.tsv", "".join(f"s{i}\tt{i}\n" for i in range(40)))
    splits = load_parallel(f, seed=1)
    assert len(splits.train) + len(splits.valid) + len(splits.test) == 40
    splits.save(tmp_path / "splits")
    assert load_parallel(tmp_path / "splits") == splits
    s = write(tmp_path / "x.src", "a\nb\nc\nd\n")
    t = write(tmp_path / "x.tgt", "A\nB\nC\nD\n")
    two = load_parallel(s, t, valid_fraction=0.25, test_fraction=0.25)
    assert sorted(two.train.src + two.valid.src + two.test.src) == ["a", "b", "c", "d"]


def test_alignment_file_follows_a_tsv_into_the_splits_and_bad_links_name_the_line(tmp_path):
    pairs = [(f"a{n} b{n}", f"x{n} y{n} z{n}") for n in range(20)]
    tsv = write(tmp_path / "p.tsv", "".join(f"{s}\t{t}\n" for s, t in pairs))
    align = write(tmp_path / "p.align", "".join(f"0-{n % 3} 1-2\n" for n in range(20)))
    splits = load_parallel(tsv, alignment_path=align, seed=3)
    for _, corpus in splits.items():
        for src, links in zip(corpus.src, corpus.alignments):
            n = int(src.split()[0][1:])
            assert links == {(0, n % 3), (1, 2)}
    write(tmp_path / "bad.align", "0-0\n" * 5 + "2-0\n" + "0-0\n" * 14)
    with pytest.raises(AttnlabError, match=r"bad.align:6: link 2-0 is outside"):
        load_parallel(tsv, alignment_path=tmp_path / "bad.align")
    with pytest.raises(AttnlabError, match="folder"):
        load_parallel(tmp_path, alignment_path=align)
