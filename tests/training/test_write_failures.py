"""A write that fails for any reason is one line and loses nothing.

Each case is real, in a child process: the file size limit of ``ulimit -f``
(``RLIMIT_FSIZE``: ``EFBIG``, always available), a full disk (a 256 KiB tmpfs: ``ENOSPC``)
and a read-only file system (the tmpfs remounted read-only: ``EROFS``) -- the last two in a
private mount namespace (``unshare -m``), skipped where this user may not mount. Each
child trains a toy run to a checkpoint, breaks the disk, trains on with ``--resume`` and
writes over a page (``attnlab.io.write_text``, what ``explore --out`` uses), then reports:
the one-line error, and whether the previous checkpoint and page are byte for byte intact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import hashlib, json, os, resource, signal, subprocess, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import ToyData, toy_model
from attnlab.errors import AttnlabError
from attnlab.io import write_safetensors, write_text
from attnlab.training import TrainConfig, Trainer
import torch

mode, root = {mode!r}, Path({root!r})
if mode != "fsize":
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(root)], check=True)
out, page = root / "run", root / "page.html"
config = dict(out_dir=str(out), save_every=2, schedule="constant", progress=False)
Trainer(toy_model(), ToyData(), TrainConfig(steps=2, **config)).fit()
write_text(page, "<html>the previous page</html>")

def digest():
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "filler" and p.suffix != ".lock")
    return {{str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}}

before = digest()
if mode == "fsize":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Python's default too: the write fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))  # < trainer_state.json
elif mode == "full":
    fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        os.close(fd)
else:
    subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
errors = []
try:
    Trainer(toy_model(), ToyData(), TrainConfig(steps=4, **config)).fit(resume=True)
except AttnlabError as e:
    errors.append(str(e))
for write in (lambda: write_text(page, "x" * 50_000), lambda: write_safetensors(root / "w.safetensors", {{"w": torch.zeros(10_000)}})):
    try:
        write()
    except AttnlabError as e:
        errors.append(str(e))
print(json.dumps({{"errors": errors, "intact": digest() == before, "left": sorted(os.listdir(root))}}))
"""

REASONS = {"fsize": "File too large", "full": "No space left on device", "ro": "Read-only file system"}


def _can_mount() -> bool:
    if os.name != "posix" or shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.parametrize("mode", [
    "fsize",
    pytest.param("full", marks=pytest.mark.skipif(not _can_mount(), reason="needs a private mount namespace (root)")),
    pytest.param("ro", marks=pytest.mark.skipif(not _can_mount(), reason="needs a private mount namespace (root)")),
])
def test_a_failed_write_is_one_line_and_the_previous_files_survive(mode, tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent), mode=mode, root=str(root)))
    command = [sys.executable, str(script)]
    if mode != "fsize":
        command = ["unshare", "-m", "--propagation", "private", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    checkpoint, page, weights = report["errors"]
    reason = REASONS[mode]
    if mode == "ro":  # found before training starts
        assert checkpoint == f"--out {root / 'run'}: cannot write in {root} (read-only file system); choose another --out"
    else:
        assert checkpoint == (f"cannot write the checkpoint in {root / 'run'} ({reason}); "
                              f"the last checkpoint (step 2) in {root / 'run'} is intact")
    assert page == f"{root / 'page.html'}: cannot write ({reason}); the previous file is unchanged"
    assert weights == f"{root / 'w.safetensors'}: cannot write ({reason}); nothing was written"  # safetensors' own error
    assert all("\n" not in e for e in report["errors"])
    assert report["intact"], "the previous checkpoint or page changed"
    left = [n for n in report["left"] if n != "filler" and not n.endswith(".lock")]  # the run's lock file: its own
    assert left == ["page.html", "run"]  # no .run.new, no temporary files
