"""The loader fuzz test: every corrupt user file ends in one clear line, never a traceback,
a hang or a silent success; every valid variant still works (tests/reliability/cases.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
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


DEVICE_COMMANDS = {"translate": "tr", "generate": "lm", "fill-mask": "mlm", "classify": "vit", "viz gat csv": "gat"}


@pytest.mark.parametrize("device", ["cuda", "cuda:3", "tpu", "cpu:x"])
@pytest.mark.parametrize("command", DEVICE_COMMANDS)
def test_unavailable_device_is_one_line(command, device, base, tmp_path):
    """``--device cuda`` on a CPU-only torch (or a device that does not exist): one line
    naming ``--device``, not torch's traceback."""
    if device.startswith("cuda") and torch.cuda.is_available() and device == "cuda":
        pytest.skip("CUDA is available here")
    prepare(Case("device", device, DEVICE_COMMANDS[command], "ckpt", command, lambda p: None), base, tmp_path)
    result = run_cli([*COMMANDS[command](tmp_path), "--device", device], "--device")
    assert result.outcome == "clear", f"{result.outcome}: {result.stderr[-2000:]}{result.detail}"


def test_reliability_doc_states_these_cases():
    """docs/reliability.md's table lists every kind with the number of cases tried here."""
    doc = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text()
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[1].isdigit() and cells[2].isdigit():
            rows[cells[0]] = (int(cells[1]), int(cells[2]))
    counted = {}
    for case in CASES:
        corrupt, valid = counted.get(case.kind, (0, 0))
        counted[case.kind] = (corrupt + (not case.valid), valid + case.valid)
    assert rows == counted
    assert sum(c for c, _ in counted.values()) >= 200
