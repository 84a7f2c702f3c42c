"""The loader fuzz test: every corrupt user file ends in one clear line, never a traceback,
a hang or a silent success; every valid variant still works (tests/reliability/cases.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fuzz_cases import COMMANDS, Case, all_cases
from fuzz_harness import run_cli

CASES = all_cases()


def prepare(case: Case, base: Path, folder: Path) -> None:
    shutil.copytree(base / "data", folder / "data")
    if case.run is not None:
        shutil.copytree(base / case.run, folder / "ckpt")
    case.mutation(folder / case.target)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corrupt_input(case: Case, base, tmp_path):
    prepare(case, base, tmp_path)
    names = None if case.valid else Path(case.target).name
    result = run_cli(COMMANDS[case.command](tmp_path), names, valid=case.valid)
    expected = "ok" if case.valid else "clear"
    assert result.outcome == expected, f"{result.outcome}: {result.stderr[-2000:]}{result.detail}"
