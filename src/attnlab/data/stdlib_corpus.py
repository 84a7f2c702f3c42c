"""Text for language models: the Python standard library's own source, or the user's files.

The embedded default corpus needs no download: it is the ``.py`` files of the standard
library of the Python running attnlab (``sysconfig.get_paths()["stdlib"]``, about 1,800
files and 30 MB for CPython 3.11, ``site-packages`` left out) — real text that nobody
here wrote.

Train/validation split *by file*, so validation text is unseen code, not an unseen
stretch of a seen file. A file goes to validation when the first 8 bytes of the SHA-1
of its relative path, read as a fraction of 2^64, fall below ``val_fraction``: the same
files on every run and every machine with the same Python, and adding a file never
moves another one.

User data: one text file (its last ``val_fraction`` of characters, cut at a line
start, is the validation part) or a folder of text files (split by file as above).
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.validation import read_text

TEXT_SUFFIXES = (".txt", ".py", ".md", ".rst", ".text", ".csv", ".json", ".html", ".xml", ".c", ".h", ".js")
FILE_SEPARATOR = "\n\n"


@dataclass
class TextCorpus:
    """Training and validation text, and which files each came from."""

    train: str
    validation: str
    train_files: list[str] = field(default_factory=list)
    validation_files: list[str] = field(default_factory=list)
    source: str = ""

    def describe(self) -> str:
        return (
            f"{self.source}: {len(self.train):,} training characters ({len(self.train_files)} files), "
            f"{len(self.validation):,} validation characters ({len(self.validation_files)} files)"
        )


def stdlib_root() -> Path:
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise AttnlabError(f"the Python standard library was not found at {root}; pass --data PATH")
    return root


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The standard library's ``.py`` files, sorted by relative path (no site-packages)."""
    root = stdlib_root() if root is None else root
    files = [p for p in root.rglob("*.py") if "site-packages" not in p.relative_to(root).parts and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def is_validation(relative_path: str, val_fraction: float) -> bool:
    """The deterministic per-file split (see the module docstring)."""
    digest = hashlib.sha1(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise AttnlabError(f"{path}: cannot read ({e.strerror})") from None


def _read_users(path: Path) -> str:
    """A user's text file: UTF-8 text, not a binary (:func:`attnlab.validation.read_text`)."""
    try:
        return read_text(path)
    except AttnlabError as e:
        raise AttnlabError(f"--data {e}") from None


def corpus_from_files(
    files: list[Path], root: Path, val_fraction: float, source: str, max_chars: int | None = None, read=_read
) -> TextCorpus:
    """Split ``files`` by file into a :class:`TextCorpus`; ``max_chars`` caps each split;
    ``read``: how a file is read (the standard library's few odd bytes are replaced)."""
    if not 0 < val_fraction < 1:
        raise AttnlabError(f"val_fraction must be in (0, 1), got {val_fraction}")
    parts: dict[bool, list[str]] = {False: [], True: []}
    names: dict[bool, list[str]] = {False: [], True: []}
    sizes = {False: 0, True: 0}
    for path in files:
        name = path.relative_to(root).as_posix()
        side = is_validation(name, val_fraction)
        if max_chars is not None and sizes[side] >= max_chars:
            continue
        text = read(path)
        parts[side].append(text)
        names[side].append(name)
        sizes[side] += len(text) + len(FILE_SEPARATOR)
    if not parts[False] or not parts[True]:
        raise AttnlabError(
            f"{source}: {len(files)} file(s) do not make both a training and a validation split "
            f"with val_fraction={val_fraction}; add files or give a single text file"
        )
    train, validation = (FILE_SEPARATOR.join(parts[side]) for side in (False, True))
    if max_chars is not None:
        train, validation = train[:max_chars], validation[:max_chars]
    return TextCorpus(train, validation, names[False], names[True], source)


def stdlib_corpus(val_fraction: float = 0.05, max_chars: int | None = None) -> TextCorpus:
    """The embedded default: the standard library's source split by file."""
    root = stdlib_root()
    return corpus_from_files(stdlib_files(root), root, val_fraction, f"Python standard library ({root})", max_chars)


def text_corpus(path: str | Path, val_fraction: float = 0.05, max_chars: int | None = None) -> TextCorpus:
    """A user's text file or folder of text files (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            (p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES),
            key=lambda p: p.relative_to(path).as_posix(),
        )
        if not files:
            raise AttnlabError(f"--data {path}: no text files ({', '.join(TEXT_SUFFIXES)}) in this folder")
        return corpus_from_files(files, path, val_fraction, str(path), max_chars, read=_read_users)
    if not path.is_file():
        raise AttnlabError(f"--data {path}: no such file or folder")
    text = _read_users(path)
    if not text.strip():
        raise AttnlabError(f"--data {path}: no text in the file (only whitespace)")
    cut = text.rfind("\n", 0, int(len(text) * (1 - val_fraction))) + 1 or int(len(text) * (1 - val_fraction))
    train, validation = text[:cut], text[cut:]
    if len(train) < 2 or len(validation) < 2:
        raise AttnlabError(f"--data {path}: too little text ({len(text)} characters) to split into training and validation")
    if max_chars is not None:
        train, validation = train[:max_chars], validation[:max_chars]
    return TextCorpus(train, validation, [path.name], [path.name], str(path))


def load_corpus(path: str | Path | None = None, val_fraction: float = 0.05, max_chars: int | None = None) -> TextCorpus:
    """``path`` (file or folder) when given, else the standard library."""
    if path is None:
        return stdlib_corpus(val_fraction, max_chars)
    return text_corpus(path, val_fraction, max_chars)
