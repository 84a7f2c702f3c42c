"""The docs run as written: every code block of README.md and docs/*.md, by its fence's language.

Convention (each fence names its language; an unnamed fence fails this test):

* ```python  -- a complete program: imports and inputs included. Each block runs alone, as
  pasted, in a fresh scratch folder (``python snippet.py``, ``OMP_NUM_THREADS=1``, a time limit),
  and must exit 0. A block that trains uses tiny settings, so the whole set takes seconds.
  A block right after ``<!-- deploy-snippet -->`` (docs/deploy.md's loop that runs without
  attnlab) needs an export folder: tests/export/test_deploy_doc.py runs it on a fresh export.
* ```bash    -- commands a user types. Every ``attnlab ...`` command in it (continuation lines
  joined, comments dropped) must parse with attnlab's own argument parser: the subcommand and
  every flag and value exist (nothing runs: they train for minutes or read the user's files).
  Other lines (``make``, ``source``, ``pip``) are not checked.
* ```console -- illustrative shell: usage synopses with ``[OPTIONS]``, folder listings, commands
  shown for their output. Not run.
* ```text    -- sample output, formulas, diagrams. Not run.
* ```json, ```toml, ```c ... -- file contents. Not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"python", "bash", "console", "text", "json", "toml", "yaml", "c", "diff"}
TIME_LIMIT_S = 300  # per block; the slowest (a tiny training run) takes a few seconds alone
FENCE = re.compile(r"^(\s*)```(.*)$")
SHELL_OPERATORS = {"&", "&&", "||", "|", ";"}
DEPLOY_MARK = "<!-- deploy-snippet -->"


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    run_elsewhere: bool = False  # right after <!-- deploy-snippet -->: test_deploy_doc.py runs it

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file; an unclosed fence is an error naming its line."""
    out, opened, body, previous = [], None, [], ""
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        m = FENCE.match(line)
        if opened is None and m:
            opened, body = (n, m.group(2).strip(), len(m.group(1)), previous == DEPLOY_MARK), []
        elif opened is not None and m and not m.group(2).strip():
            start, language, indent, elsewhere = opened
            out.append(Block(path, start, language, "\n".join(b[indent:] for b in body) + "\n", elsewhere))
            opened = None
        elif opened is not None:
            body.append(line)
        if opened is None and line.strip():
            previous = line.strip()
    if opened is not None:
        raise AssertionError(f"{path.relative_to(ROOT)}:{opened[0]}: a code fence that is never closed")
    return out


ALL = [b for p in DOCS for b in blocks(p)]
PYTHON = [b for b in ALL if b.language == "python" and not b.run_elsewhere]
BASH = [b for b in ALL if b.language == "bash"]


def test_every_fence_names_a_known_language():
    unnamed = [f"{b.where} ({b.language or 'no language'})" for b in ALL if b.language not in LANGUAGES]
    assert not unnamed, f"name each fence's language ({', '.join(sorted(LANGUAGES))}): {unnamed}"


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_blocks_run_as_complete_programs(block, tmp_path):
    (tmp_path / "snippet.py").write_text(block.code, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: still running after {TIME_LIMIT_S} s (use tiny settings)", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"{block.where}: exit {done.returncode}\n{done.stderr[-3000:]}", pytrace=False)


def attnlab_commands(code: str) -> list[list[str]]:
    """Each ``attnlab ...`` command of a shell block, as argv (after ``attnlab``)."""
    commands = []
    for line in code.replace("\\\n", " ").split("\n"):
        words = shlex.split(line, comments=True)
        ends = [k for k, w in enumerate(words) if w in SHELL_OPERATORS or w.startswith((">", "2>"))]
        words = words[: ends[0]] if ends else words  # the command, not what the shell does with it
        if words[:1] == ["attnlab"]:
            commands.append(words[1:])
        elif "-m" in words and words[words.index("-m") + 1:][:1] == ["attnlab"]:  # python -m, torchrun ... -m
            commands.append(words[words.index("-m") + 2:])
    return commands


@pytest.mark.parametrize("block", BASH, ids=[b.where for b in BASH])
def test_attnlab_commands_in_bash_blocks_parse(block, capsys):
    from attnlab.cli.main import build_parser

    parser = build_parser()
    for argv in attnlab_commands(block.code):
        try:
            parser.parse_args(argv)
        except SystemExit as stop:
            if stop.code:  # --help and --version exit 0
                pytest.fail(f"{block.where}: attnlab {shlex.join(argv)}\n{capsys.readouterr().err.strip()}",
                            pytrace=False)


def test_the_collector_sees_the_docs():
    assert len(PYTHON) >= 20 and len(BASH) >= 5
    assert attnlab_commands("attnlab train lm \\\n  --steps 5   # tiny\nmake demo\n") == [["train", "lm", "--steps", "5"]]
    assert attnlab_commands("torchrun --nproc-per-node=2 -m attnlab demo\npython -m attnlab.data.x fr\n") == [["demo"]]
    assert attnlab_commands("attnlab demo --out d > log.txt &\n") == [["demo", "--out", "d"]]
