"""The Makefile says what it installs: `make test` prints one line naming the system packages
apt-get installs and why, and ATTNLAB_NO_APT=1 opts out; `make demo` installs the onnx extra
(the README's attnlab export works after it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def apt_block(tmp_path: Path, *make_args: str) -> str:
    """The shell of the system-package step, as `make -n test` prints it, with chromium missing."""
    dry = subprocess.run(["make", "--no-print-directory", "-n", "-B", "test", *make_args], cwd=ROOT, capture_output=True, text=True,
                         timeout=60).stdout
    lines = dry.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith('missing=""'))
    end = next(n for n in range(start, len(lines)) if lines[n].strip() == "fi")
    return "\n".join(lines[start : end + 1]).replace("/usr/bin/chromium", str(tmp_path / "no-chromium"))


def run(script: str, tmp_path: Path) -> str:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {tmp_path / "apt.log"}\n')
    (fake / "apt-get").chmod(0o755)
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{fake}:/usr/bin:/bin"})
    return done.stdout


def test_make_test_says_what_apt_installs_and_honours_the_opt_out(tmp_path):
    said = run(apt_block(tmp_path), tmp_path)
    assert "apt-get install chromium" in said and "explorer's browser tests" in said and "ATTNLAB_NO_APT=1" in said
    assert "install -y -qq chromium" in (tmp_path / "apt.log").read_text()
    (tmp_path / "apt.log").unlink()
    said = run(apt_block(tmp_path, "ATTNLAB_NO_APT=1"), tmp_path)
    assert "ATTNLAB_NO_APT is set: not installing chromium" in said
    assert not (tmp_path / "apt.log").exists()


def test_make_demo_installs_the_onnx_extra():
    dry = subprocess.run(["make", "--no-print-directory", "-n", "-B", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert "pip install -q -e '.[onnx]'" in dry and dry.strip().endswith("attnlab demo")
