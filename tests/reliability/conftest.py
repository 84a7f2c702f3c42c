"""The valid inputs every fuzz case starts from: data files and tiny runs trained by the CLI."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from attnlab.cli.main import main

WORDS = "the cat sat on a mat and dog ran far away from home to see big red ball".split()


def write_data(folder: Path) -> None:
    """text.txt (documents), cls.tsv (text<TAB>label), par.tsv (source<TAB>target), a CSV
    graph (edges.csv, nodes.csv) and images (image.png, images/{a,b}/*.png)."""
    from PIL import Image

    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    sentence = lambda n: " ".join(rng.choice(WORDS) for _ in range(n))  # noqa: E731
    (folder / "text.txt").write_text("".join("".join(sentence(8) + "\n" for _ in range(5)) + "\n" for _ in range(40)))
    (folder / "cls.tsv").write_text("".join(f"{sentence(6)}\t{rng.choice(['pos', 'neg'])}\n" for _ in range(80)))
    pairs = [sentence(5) for _ in range(80)]
    (folder / "par.tsv").write_text("".join(f"{s}\t{' '.join(reversed(s.split()))}\n" for s in pairs))
    (folder / "src.txt").write_text("".join(f"{s}\n" for s in pairs))  # --data + --tgt-data: line-aligned files
    (folder / "tgt.txt").write_text("".join(f"{' '.join(reversed(s.split()))}\n" for s in pairs))
    (folder / "par.align").write_text("".join(" ".join(f"{i}-{4 - i}" for i in range(5)) + "\n" for _ in pairs))
    n = 30
    labels = ["a" if i < n // 2 else "b" for i in range(n)]
    splits = ["train" if i % 3 == 0 else "val" if i % 3 == 1 else "test" for i in range(n)]
    (folder / "nodes.csv").write_text("id,label,split,f1,f2\n" + "".join(
        f"n{i},{labels[i]},{splits[i]},0.5,{rng.random():.3f}\n" for i in range(n)))
    edges = {(i, (i + 1) % n) for i in range(n)} | {(i, rng.randrange(n)) for i in range(n)}
    (folder / "edges.csv").write_text("source,target\n" + "".join(f"n{a},n{b}\n" for a, b in sorted(edges) if a != b))
    Image.new("L", (8, 8), 128).save(folder / "image.png")
    for c, shade in (("a", 30), ("b", 220)):
        (folder / "images" / c).mkdir(parents=True, exist_ok=True)
        for k in range(1, 4):
            Image.new("L", (8, 8), shade + 5 * k).save(folder / "images" / c / f"{k}.png")


TRAIN = {
    "tr": ["train", "translate", "--corpus", "tiny", "--preset", "tiny", "--batch-size", "8"],
    "s2s": ["train", "seq2seq", "--corpus", "tiny", "--preset", "tiny", "--batch-size", "8"],
    "lm": ["train", "lm", "--data", "{data}/text.txt", "--preset", "tiny", "--context", "16", "--batch-size", "2",
           "--final-eval", "none"],
    "mlm": ["train", "mlm", "--data", "{data}/text.txt", "--preset", "tiny", "--vocab-size", "200", "--batch-size", "4"],
    "vit": ["train", "vit", "--data", "{data}/images", "--image-size", "8", "--channels", "1", "--batch-size", "4",
            "--test-fraction", "0.5"],
    "gat": ["train", "gat", "--edges", "{data}/edges.csv", "--nodes", "{data}/nodes.csv", "--seeds", "1",
            "--hidden", "4", "--heads", "2"],  # not the defaults: a field left out of config.json shows
}


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> Path:
    """A folder with ``data/`` and one tiny run per model (``tr``, ``s2s``, ``lm``, ``mlm``, ``vit``, ``gat``)."""
    root = tmp_path_factory.mktemp("reliability-base")
    write_data(root / "data")
    for run, argv in TRAIN.items():
        argv = [a.replace("{data}", str(root / "data")) for a in argv]
        assert main([*argv, "--steps", "2", "--quiet", "--out", str(root / run)]) == 0, run
    return root
